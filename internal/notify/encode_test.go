package notify

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// tricky are strings encoding/json escapes in every way it knows.
var tricky = []string{"", "plain", `quote " and \ backslash`, "<html> & 'amp'", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "é ü 日本 🎉", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "urn:uuid:0f0e", "Patient/p1/_history/2"}

// randomString mixes tricky pieces.
func randomString(r *rand.Rand) string {
	s := ""
	for range r.IntN(3) {
		s += tricky[r.IntN(len(tricky))]
	}
	return s
}

func randomRaw(r *rand.Rand) json.RawMessage {
	raws := []string{`{"resourceType":"Patient","id":"p1"}`, " { \"a\" : [ 1 , 2.50 , true , null ] ,\n\t\"b\":\"<é>\\u2028\" } ",
		`{"x":"\u003c&\u003e","y":{}}`, `[]`, `"s"`}
	return json.RawMessage(raws[r.IntN(len(raws))])
}

func randomParams(r *rand.Rand, depth int) []param {
	if r.IntN(4) == 0 {
		return nil
	}
	ps := make([]param, r.IntN(4))
	for i := range ps {
		p := param{Name: randomString(r), ValueCanonical: randomString(r), ValueCode: randomString(r),
			ValueString: randomString(r), ValueInstant: randomString(r)}
		if r.IntN(2) == 0 {
			p.ValueReference = &reference{Reference: randomString(r)}
		}
		if r.IntN(2) == 0 {
			c := &codeableConcept{Text: randomString(r)}
			for range r.IntN(3) {
				c.Coding = append(c.Coding, coding{System: randomString(r), Code: randomString(r), Display: randomString(r)})
			}
			p.ValueCodeableConcept = c
		}
		if r.IntN(2) == 0 {
			p.ValueCoding = &coding{System: randomString(r), Code: randomString(r), Display: randomString(r)}
		}
		if depth < 2 {
			p.Part = randomParams(r, depth+1)
		}
		ps[i] = p
	}
	return ps
}

func randomParameters(r *rand.Rand) *parameters {
	p := &parameters{ResourceType: "Parameters", ID: randomString(r), Parameter: randomParams(r, 0)}
	if r.IntN(3) > 0 {
		p.Meta.Profile = []string{randomString(r)}
	}
	return p
}

func randomBundle(r *rand.Rand) *bundle {
	b := &bundle{ResourceType: "Bundle", ID: randomString(r), Type: randomString(r), Timestamp: randomString(r)}
	if r.IntN(2) == 0 {
		b.Meta = &meta{Profile: []string{randomString(r), randomString(r)}}
	}
	if r.IntN(2) == 0 {
		n := r.IntN(100)
		b.Total = &n
	}
	for range r.IntN(5) {
		e := entry{FullURL: randomString(r)}
		switch r.IntN(4) {
		case 0:
			e.Resource = randomParameters(r)
		case 1:
			e.Resource = randomRaw(r)
		case 2:
			e.Resource = (*parameters)(nil)
		}
		if r.IntN(2) == 0 {
			e.Search = &search{Mode: randomString(r)}
		}
		if r.IntN(2) == 0 {
			e.Request = &request{Method: randomString(r), URL: randomString(r)}
		}
		if r.IntN(2) == 0 {
			e.Response = &response{Status: randomString(r), Etag: randomString(r)}
		}
		b.Entry = append(b.Entry, e)
	}
	return b
}

// TestEncoderMatchesEncodingJSON: the hand-written encoder writes what
// encoding/json writes, byte for byte, for random Bundles and Parameters.
func TestEncoderMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	for i := range 3000 {
		var v any = randomBundle(r)
		if i%3 == 0 {
			v = randomParameters(r)
		}
		want, err := encodeReflect(v)
		require.NoError(t, err)
		got, ok := appendValue(nil, v)
		require.True(t, ok)
		require.Equal(t, string(want), string(got), "case %d", i)
	}
}

// TestEncoderFallsBack: a stored resource that is not JSON gets
// encoding/json's error, and a type encode.go does not know is encoded by
// encoding/json.
func TestEncoderFallsBack(t *testing.T) {
	b := &bundle{ResourceType: "Bundle", Entry: []entry{{FullURL: "x", Resource: json.RawMessage(`{"broken"`)}}}
	_, ok := appendValue(nil, b)
	require.False(t, ok)
	_, wantErr := encodeReflect(b)
	_, err := encode(b)
	require.Error(t, err)
	require.Equal(t, wantErr.Error(), err.Error())

	got, err := encode(map[string]int{"a": 1})
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(got))
}

func FuzzAppendString(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := encodeReflect(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendString(nil, s)))
	})
}

// BenchmarkEncode: the hand-written encoder against encoding/json on the
// same random Bundles, in one process (run with -count to interleave).
func BenchmarkEncode(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	bundles := make([]*bundle, 64)
	for i := range bundles {
		bundles[i] = randomBundle(r)
	}
	for _, c := range []struct {
		name string
		enc  func(any) ([]byte, error)
	}{{"hand", encode}, {"encoding-json", encodeReflect}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.enc(bundles[i%len(bundles)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
