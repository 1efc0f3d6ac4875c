package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testKey is a fixed key whose bytes are seed repeated.
func testKey(id string, seed byte) Key {
	return Key{ID: id, Bytes: bytes.Repeat([]byte{seed}, KeySize)}
}

func mustKeyring(t *testing.T, primary Key, old ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(primary, old...)
	require.NoError(t, err)
	return kr
}

const plaintextMarker = "whsec_TOP-SECRET-plaintext-0123456789abcdef"

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1))
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{name: "secret", plaintext: []byte(plaintextMarker), ad: []byte("sub-123")},
		{name: "empty plaintext", plaintext: []byte{}, ad: []byte("sub-123")},
		{name: "nil plaintext", plaintext: nil, ad: []byte("sub-123")},
		{name: "nil ad", plaintext: []byte("x"), ad: nil},
		{name: "binary", plaintext: []byte{0, 1, 2, 0xff, '.', '\n'}, ad: []byte{0, '.', 0xff}},
		{name: "large", plaintext: bytes.Repeat([]byte("abc"), 100_000), ad: []byte("sub")},
		{name: "structured ad", plaintext: []byte("v"), ad: AssociatedData("Subscription", "123", "header", "Authorization")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := kr.Seal(tt.plaintext, tt.ad)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(sealed, "v1.k1."), sealed)
			require.NotContains(t, sealed, plaintextMarker)
			payload := strings.TrimPrefix(sealed, "v1.k1.")
			raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
			require.NoError(t, err)
			require.Len(t, raw, 12+len(tt.plaintext)+16)

			got, err := kr.Open(sealed, tt.ad)
			require.NoError(t, err)
			require.NotNil(t, got)
			require.Equal(t, string(tt.plaintext), string(got))
			require.False(t, kr.NeedsRotation(sealed))
		})
	}
}

func TestSealOpenEmptyADEquivalence(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1))
	sealed, err := kr.Seal([]byte("x"), nil)
	require.NoError(t, err)
	got, err := kr.Open(sealed, []byte{})
	require.NoError(t, err)
	require.Equal(t, []byte("x"), got)
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldKey := testKey("old", 1)
	newKey := testKey("new", 2)
	ad := []byte("sub-1")

	before := mustKeyring(t, oldKey)
	sealedOld, err := before.Seal([]byte(plaintextMarker), ad)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sealedOld, "v1.old."))

	after := mustKeyring(t, newKey, oldKey)
	require.Equal(t, "new", after.PrimaryID())

	// Old values still open.
	got, err := after.Open(sealedOld, ad)
	require.NoError(t, err)
	require.Equal(t, plaintextMarker, string(got))
	require.True(t, after.NeedsRotation(sealedOld))

	// New values use the new key, and the old keyring cannot open them.
	sealedNew, err := after.Seal([]byte(plaintextMarker), ad)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sealedNew, "v1.new."))
	require.False(t, after.NeedsRotation(sealedNew))
	_, err = before.Open(sealedNew, ad)
	require.ErrorIs(t, err, ErrUnknownKey)
	require.ErrorContains(t, err, `"new"`)

	// Reseal moves old values to the primary key, keeping the AD binding.
	resealed, err := after.Reseal(sealedOld, ad)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resealed, "v1.new."))
	require.False(t, after.NeedsRotation(resealed))
	got, err = after.Open(resealed, ad)
	require.NoError(t, err)
	require.Equal(t, plaintextMarker, string(got))
	_, err = after.Open(resealed, []byte("sub-2"))
	require.ErrorIs(t, err, ErrAuthentication)

	// Resealing a current value is a no-op; a wrong AD is refused.
	same, err := after.Reseal(sealedNew, ad)
	require.NoError(t, err)
	require.Equal(t, sealedNew, same)
	_, err = after.Reseal(sealedOld, []byte("sub-2"))
	require.ErrorIs(t, err, ErrAuthentication)
	_, err = after.Reseal("garbage", ad)
	require.ErrorIs(t, err, ErrMalformed)

	// After retiring the old key, old values are refused.
	retired := mustKeyring(t, newKey)
	_, err = retired.Open(sealedOld, ad)
	require.ErrorIs(t, err, ErrUnknownKey)
	got, err = retired.Open(resealed, ad)
	require.NoError(t, err)
	require.Equal(t, plaintextMarker, string(got))
}

func TestNeedsRotation(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("cur", 1), testKey("prev", 2))
	prev := mustKeyring(t, testKey("prev", 2))
	cur, err := kr.Seal([]byte("x"), nil)
	require.NoError(t, err)
	old, err := prev.Seal([]byte("x"), nil)
	require.NoError(t, err)
	tests := []struct {
		sealed string
		want   bool
	}{
		{sealed: cur, want: false},
		{sealed: old, want: true},
		{sealed: "v1.unknown.AAAA", want: true},
		{sealed: "v2.cur.AAAA", want: true},
		{sealed: "", want: true},
		{sealed: "garbage", want: true},
		{sealed: "v1.cur", want: true},
		{sealed: "v1.cur.", want: false}, // header only; Open will refuse it
	}
	for _, tt := range tests {
		t.Run(tt.sealed, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, kr.NeedsRotation(tt.sealed))
		})
	}
}

func TestTamperDetection(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1), testKey("k2", 2), Key{Bytes: bytes.Repeat([]byte{3}, KeySize)})
	ad := []byte("sub-1")
	sealed, err := kr.Seal([]byte(plaintextMarker), ad)
	require.NoError(t, err)
	for i := range len(sealed) {
		for _, mask := range []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff} {
			b := []byte(sealed)
			b[i] ^= mask
			got, err := kr.Open(string(b), ad)
			require.Error(t, err, "position %d mask %#x", i, mask)
			require.Nil(t, got)
			require.NotContains(t, err.Error(), plaintextMarker)
		}
	}
	// Truncation and extension at every length.
	for n := range len(sealed) {
		_, err := kr.Open(sealed[:n], ad)
		require.Error(t, err, "truncated to %d", n)
	}
	for _, suffix := range []string{"A", "AA", "AAA", "AAAA", "=", "==", "\n", "\r\n", " ", "."} {
		_, err := kr.Open(sealed+suffix, ad)
		require.Error(t, err, "suffix %q", suffix)
		_, err = kr.Open(suffix+sealed, ad)
		require.Error(t, err, "prefix %q", suffix)
	}
	// Inserting CR or LF (which base64 decoders skip) is refused.
	for i := len("v1.k1.") + 1; i < len(sealed); i++ {
		_, err := kr.Open(sealed[:i]+"\n"+sealed[i:], ad)
		require.ErrorIs(t, err, ErrMalformed)
	}
	// The untouched value still opens.
	got, err := kr.Open(sealed, ad)
	require.NoError(t, err)
	require.Equal(t, plaintextMarker, string(got))
}

func TestWrongAssociatedData(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1))
	sealed, err := kr.Seal([]byte(plaintextMarker), []byte("sub-1"))
	require.NoError(t, err)
	for _, ad := range [][]byte{nil, {}, []byte("sub-2"), []byte("sub-1 "), []byte("sub-"), []byte("SUB-1"), []byte("sub-10")} {
		got, err := kr.Open(sealed, ad)
		require.ErrorIs(t, err, ErrAuthentication, "%q", ad)
		require.Nil(t, got)
		require.NotContains(t, err.Error(), plaintextMarker)
		require.NotContains(t, err.Error(), "sub-1")
	}
}

func TestAssociatedDataBindsPurpose(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1))
	sealed, err := kr.Seal([]byte("v"), AssociatedData("sub-1", "signing-secret"))
	require.NoError(t, err)
	_, err = kr.Open(sealed, AssociatedData("sub-1", "header", "X-Api-Key"))
	require.ErrorIs(t, err, ErrAuthentication)
	_, err = kr.Open(sealed, AssociatedData("sub-1signing-secret"))
	require.ErrorIs(t, err, ErrAuthentication)
	got, err := kr.Open(sealed, AssociatedData("sub-1", "signing-secret"))
	require.NoError(t, err)
	require.Equal(t, "v", string(got))

	// The encoding is unambiguous where plain concatenation is not.
	require.NotEqual(t, AssociatedData("ab", "c"), AssociatedData("a", "bc"))
	require.NotEqual(t, AssociatedData("a", ""), AssociatedData("a"))
	require.NotEqual(t, AssociatedData(""), AssociatedData())
	require.Empty(t, AssociatedData())
	require.Equal(t, []byte{1, 'a', 0}, AssociatedData("a", ""))
}

func TestKeyIDBoundToCiphertext(t *testing.T) {
	t.Parallel()
	// The same key under two ids: relabelling a value is detected because
	// the header is part of the associated data.
	a := mustKeyring(t, testKey("a", 7))
	b := mustKeyring(t, testKey("b", 7))
	sealed, err := a.Seal([]byte("x"), nil)
	require.NoError(t, err)
	relabelled := "v1.b." + strings.TrimPrefix(sealed, "v1.a.")
	_, err = b.Open(relabelled, nil)
	require.ErrorIs(t, err, ErrAuthentication)
}

func TestUnknownKeyID(t *testing.T) {
	t.Parallel()
	k1 := mustKeyring(t, testKey("k1", 1))
	k2 := mustKeyring(t, testKey("k2", 2))
	sealed, err := k1.Seal([]byte(plaintextMarker), nil)
	require.NoError(t, err)
	got, err := k2.Open(sealed, nil)
	require.ErrorIs(t, err, ErrUnknownKey)
	require.EqualError(t, err, `secrets: sealed with an unknown key "k1"`)
	require.Nil(t, got)

	// Same id, different key bytes: authentication fails.
	k1b := mustKeyring(t, testKey("k1", 9))
	_, err = k1b.Open(sealed, nil)
	require.ErrorIs(t, err, ErrAuthentication)
}

func TestOpenMalformed(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1))
	valid, err := kr.Seal([]byte("x"), nil)
	require.NoError(t, err)
	payload := strings.TrimPrefix(valid, "v1.k1.")
	tests := []struct {
		name   string
		sealed string
		err    error
	}{
		{name: "empty", sealed: "", err: ErrMalformed},
		{name: "no dots", sealed: "garbage", err: ErrMalformed},
		{name: "version only", sealed: "v1", err: ErrMalformed},
		{name: "version dot", sealed: "v1.", err: ErrMalformed},
		{name: "no payload dot", sealed: "v1.k1", err: ErrMalformed},
		{name: "empty payload", sealed: "v1.k1.", err: ErrMalformed},
		{name: "short payload", sealed: "v1.k1.AAAA", err: ErrMalformed},
		{name: "27 bytes", sealed: "v1.k1." + base64.RawURLEncoding.EncodeToString(make([]byte, 27)), err: ErrMalformed},
		{name: "28 zero bytes", sealed: "v1.k1." + base64.RawURLEncoding.EncodeToString(make([]byte, 28)), err: ErrAuthentication},
		{name: "other version", sealed: "v2.k1." + payload, err: ErrMalformed},
		{name: "upper version", sealed: "V1.k1." + payload, err: ErrMalformed},
		{name: "empty key id", sealed: "v1.." + payload, err: ErrMalformed},
		{name: "bad key id", sealed: "v1.k 1." + payload, err: ErrMalformed},
		{name: "long key id", sealed: "v1." + strings.Repeat("k", 65) + "." + payload, err: ErrMalformed},
		{name: "padded", sealed: valid + "=", err: ErrMalformed},
		{name: "std alphabet", sealed: "v1.k1." + strings.NewReplacer("-", "+", "_", "/").Replace(payload) + "+/", err: ErrMalformed},
		{name: "extra dot", sealed: valid + ".x", err: ErrMalformed},
		{name: "space", sealed: valid + " ", err: ErrMalformed},
		{name: "newline", sealed: valid[:10] + "\n" + valid[10:], err: ErrMalformed},
		{name: "non-ascii", sealed: valid + "é", err: ErrMalformed},
		{name: "unknown id", sealed: "v1.k2." + payload, err: ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := kr.Open(tt.sealed, nil)
			require.ErrorIs(t, err, tt.err)
			require.Nil(t, got)
		})
	}
}

func TestNonceUniqueness(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1))
	const n = 20_000
	nonces := make(map[string]struct{}, n)
	sealedSeen := make(map[string]struct{}, n)
	for range n {
		sealed, err := kr.Seal([]byte("same plaintext"), []byte("same ad"))
		require.NoError(t, err)
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "v1.k1."))
		require.NoError(t, err)
		nonce := string(raw[:12])
		_, dup := nonces[nonce]
		require.False(t, dup, "nonce repeated")
		nonces[nonce] = struct{}{}
		sealedSeen[sealed] = struct{}{}
	}
	require.Len(t, nonces, n)
	require.Len(t, sealedSeen, n)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, testKey("k1", 1), testKey("k0", 2))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				pt := fmt.Sprintf("g%d-i%d", g, i)
				ad := []byte(pt)
				sealed, err := kr.Seal([]byte(pt), ad)
				if err != nil {
					errs <- err
					return
				}
				got, err := kr.Open(sealed, ad)
				if err != nil || string(got) != pt {
					errs <- fmt.Errorf("round trip %q: %v", pt, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestNewKeyring(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		primary Key
		old     []Key
		err     string
		id      string
	}{
		{name: "one key", primary: testKey("k1", 1), id: "k1"},
		{name: "derived id", primary: testKey("", 1), id: DeriveKeyID(bytes.Repeat([]byte{1}, KeySize))},
		{name: "with old", primary: testKey("k2", 2), old: []Key{testKey("k1", 1), testKey("", 3)}, id: "k2"},
		{name: "short", primary: Key{ID: "k", Bytes: make([]byte, 16)}, err: "key 0 is 16 bytes, want 32"},
		{name: "long", primary: Key{ID: "k", Bytes: make([]byte, 33)}, err: "key 0 is 33 bytes"},
		{name: "nil", primary: Key{ID: "k"}, err: "key 0 is 0 bytes"},
		{name: "zero", primary: Key{ID: "k", Bytes: make([]byte, KeySize)}, err: "key 0 is all zero"},
		{name: "old short", primary: testKey("k1", 1), old: []Key{{ID: "k0", Bytes: []byte("x")}}, err: "key 1 is 1 bytes"},
		{name: "dup id", primary: testKey("k1", 1), old: []Key{testKey("k1", 2)}, err: `key id "k1" is used twice`},
		{name: "dup derived id", primary: testKey("", 1), old: []Key{testKey("", 1)}, err: "is used twice"},
		{name: "dup bytes", primary: testKey("k1", 1), old: []Key{testKey("k0", 1)}, err: `key "k0" is the same key as another`},
		{name: "dot id", primary: testKey("k.1", 1), err: "key id must be"},
		{name: "space id", primary: testKey("k 1", 1), err: "key id must be"},
		{name: "long id", primary: testKey(strings.Repeat("k", 65), 1), err: "key id must be"},
		{name: "max id", primary: testKey(strings.Repeat("k", 64), 1), id: strings.Repeat("k", 64)},
		{name: "id charset", primary: testKey("Key_2024-01", 1), id: "Key_2024-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kr, err := NewKeyring(tt.primary, tt.old...)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrInvalidKey)
				require.ErrorContains(t, err, tt.err)
				require.Nil(t, kr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.id, kr.PrimaryID())
			sealed, err := kr.Seal([]byte("x"), nil)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(sealed, "v1."+tt.id+"."))
		})
	}
}

func TestKeyringDoesNotAliasCallerBytes(t *testing.T) {
	t.Parallel()
	k := testKey("k1", 1)
	kr := mustKeyring(t, k)
	sealed, err := kr.Seal([]byte("x"), nil)
	require.NoError(t, err)
	clear(k.Bytes)
	got, err := kr.Open(sealed, nil)
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
}

func TestNilAndZeroKeyring(t *testing.T) {
	t.Parallel()
	for _, kr := range []*Keyring{nil, {}} {
		_, err := kr.Seal([]byte("x"), nil)
		require.Error(t, err)
		_, err = kr.Open("v1.k1.AAAA", nil)
		require.Error(t, err)
		require.Empty(t, kr.PrimaryID())
		require.True(t, kr.NeedsRotation("v1.k1.AAAA"))
		require.Equal(t, "secrets.Keyring{}", kr.String())
	}
}

func TestKeyFromBase64(t *testing.T) {
	t.Parallel()
	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = byte(i*7 + 0xf0) // exercises +/ and -_ alphabets
	}
	std := base64.StdEncoding.EncodeToString(raw)
	require.Contains(t, std, "+")
	tests := []struct {
		name string
		id   string
		b64  string
		err  string
		want string // id
	}{
		{name: "std", b64: std, want: DeriveKeyID(raw)},
		{name: "std raw", b64: base64.RawStdEncoding.EncodeToString(raw), want: DeriveKeyID(raw)},
		{name: "url", b64: base64.URLEncoding.EncodeToString(raw), want: DeriveKeyID(raw)},
		{name: "url raw", b64: base64.RawURLEncoding.EncodeToString(raw), want: DeriveKeyID(raw)},
		{name: "whitespace", b64: "  " + std + "\n", want: DeriveKeyID(raw)},
		{name: "explicit id", id: "2024-01", b64: std, want: "2024-01"},
		{name: "bad id", id: "a.b", b64: std, err: "key id must be"},
		{name: "empty", b64: "", err: "key is empty"},
		{name: "blank", b64: " \t\n", err: "key is empty"},
		{name: "not base64", b64: "not base64 at all!!", err: "key is not valid base64"},
		{name: "inner newline", b64: std[:20] + "\n" + std[20:], err: "key is not valid base64"},
		{name: "16 bytes", b64: base64.StdEncoding.EncodeToString(raw[:16]), err: "got 16 bytes"},
		{name: "33 bytes", b64: base64.StdEncoding.EncodeToString(append(raw, 1)), err: "got 33 bytes"},
		{name: "hex", b64: strings.Repeat("ab", 32), err: "got 48 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := KeyFromBase64(tt.id, tt.b64)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrInvalidKey)
				require.ErrorContains(t, err, tt.err)
				if strings.TrimSpace(tt.b64) != "" {
					require.NotContains(t, err.Error(), strings.TrimSpace(tt.b64))
				}
				require.Equal(t, Key{}, k)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, k.ID)
			require.Equal(t, raw, k.Bytes)
		})
	}
}

func TestDeriveKeyID(t *testing.T) {
	t.Parallel()
	a := DeriveKeyID(bytes.Repeat([]byte{1}, KeySize))
	require.Len(t, a, 12)
	require.Regexp(t, `^[0-9a-f]{12}$`, a)
	require.Equal(t, a, DeriveKeyID(bytes.Repeat([]byte{1}, KeySize)))
	require.NotEqual(t, a, DeriveKeyID(bytes.Repeat([]byte{2}, KeySize)))
	// Pinned: changing the derivation would orphan every stored value.
	require.Equal(t, "6819e53b1746", DeriveKeyID(make([]byte, KeySize)))
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	a, b := GenerateKey(""), GenerateKey("named")
	require.Len(t, a.Bytes, KeySize)
	require.NotEqual(t, a.Bytes, b.Bytes)
	require.Equal(t, DeriveKeyID(a.Bytes), a.ID)
	require.Equal(t, "named", b.ID)
	kr := mustKeyring(t, a, b)
	sealed, err := kr.Seal([]byte("x"), nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sealed, "v1."+a.ID+"."))
}

func TestKeyNeverPrintsBytes(t *testing.T) {
	t.Parallel()
	k := testKey("k1", 'Z') // bytes are "ZZZ..."
	secretText := string(k.Bytes)
	type holder struct {
		Key  Key
		Ptr  *Key
		Keys []Key
	}
	h := holder{Key: k, Ptr: &k, Keys: []Key{k}}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%c", "%U"} {
		outputs = append(outputs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, &k), fmt.Sprintf(verb, h))
	}
	outputs = append(outputs, fmt.Sprint(k), fmt.Sprintln(k), k.String(), k.GoString())
	j, err := json.Marshal(h)
	require.NoError(t, err)
	outputs = append(outputs, string(j))
	require.JSONEq(t, `{"id":"k1","bytes":"[redacted]"}`, string(must(json.Marshal(k))))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "key", k, "holder", h)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "key", k, "holder", h)
	outputs = append(outputs, buf.String())
	kr := mustKeyring(t, k)
	outputs = append(outputs, fmt.Sprintf("%v %+v %#v %s %d", kr, kr, kr, kr, kr))
	for _, out := range outputs {
		require.NotContains(t, out, "ZZZZ", out)
		require.NotContains(t, out, "5a5a5a", out)
		require.NotContains(t, out, "5A5A5A", out)
		require.NotContains(t, out, "90 90 90", out)
		require.NotContains(t, out, base64.StdEncoding.EncodeToString([]byte(secretText))[:8], out)
	}
	require.Equal(t, `secrets.Key{ID:"k1" Bytes:[redacted]}`, fmt.Sprintf("%v", k))
	require.Equal(t, `secrets.Keyring{primary:"k1" keys:1}`, kr.String())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
