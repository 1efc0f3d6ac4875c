package secrets

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fuzzKeyring has two keys with fixed ids so corpus entries stay meaningful.
func fuzzKeyring(t testing.TB) *Keyring {
	kr, err := NewKeyring(
		Key{ID: "k2", Bytes: bytes.Repeat([]byte{2}, KeySize)},
		Key{ID: "k1", Bytes: bytes.Repeat([]byte{1}, KeySize)},
	)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// genuine are values sealed once with fuzzKeyring's keys (see
// TestFuzzGenuineValues): the only inputs Open may accept.
var genuine = []struct{ sealed, ad, plaintext string }{
	{"v1.k2.aUZMC1r7zd-KNUEmkbnX12bnlv2fkcgDgSU9FO9bfNJ_ZLqcUEHoxzYAMYlnRyJj9tP1UVGm", "sub-1", "whsec_fuzz-known-plaintext"},
	{"v1.k1.cdJZwwENgTgHKlx_13R5roFqc1EifrV3G3Rm6u8UmEVWPIJ31JG3mQ", string(AssociatedData("sub-2", "header", "X-Api-Key")), "header-value"},
}

func TestFuzzGenuineValues(t *testing.T) {
	t.Parallel()
	kr := fuzzKeyring(t)
	for _, g := range genuine {
		pt, err := kr.Open(g.sealed, []byte(g.ad))
		if err != nil || string(pt) != g.plaintext {
			t.Fatalf("genuine %q: %q, %v", g.sealed, pt, err)
		}
	}
}

// FuzzOpen: Open never panics, accepts nothing but a genuine value with its
// own associated data (so no re-encoding or forgery of one), and its errors
// never contain plaintext.
func FuzzOpen(f *testing.F) {
	kr := fuzzKeyring(f)
	for _, g := range genuine {
		f.Add(g.sealed, g.ad+"x")
	}
	f.Add("v1.k1.", "")
	f.Fuzz(func(t *testing.T, sealed, ad string) {
		pt, err := kr.Open(sealed, []byte(ad))
		if err == nil {
			for _, g := range genuine {
				if sealed == g.sealed && ad == g.ad && string(pt) == g.plaintext {
					return
				}
			}
			t.Fatalf("Open(%q, %q) accepted a value that is not genuine: %q", sealed, ad, pt)
		}
		if pt != nil {
			t.Fatalf("Open(%q) returned plaintext with error %v", sealed, err)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrAuthentication) {
			t.Fatalf("Open(%q): unexpected error %v", sealed, err)
		}
		for _, g := range genuine {
			if strings.Contains(err.Error(), g.plaintext) {
				t.Fatalf("error %q contains plaintext", err)
			}
		}
		_ = kr.NeedsRotation(sealed)
	})
}

// FuzzSealOpen: every plaintext and associated data round-trip, the sealed
// form is canonical and contains no plaintext, and other associated data fails.
func FuzzSealOpen(f *testing.F) {
	kr := fuzzKeyring(f)
	for _, s := range []struct{ pt, ad string }{
		{"whsec_secret", "sub-1"},
		{"", ""},
		{"Bearer abc.def.ghi", "\x00.\xff"},
	} {
		f.Add(s.pt, s.ad)
	}
	f.Fuzz(func(t *testing.T, pt, ad string) {
		sealed, err := kr.Seal([]byte(pt), []byte(ad))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1.k2.") || strings.Count(sealed, ".") != 2 {
			t.Fatalf("sealed %q", sealed)
		}
		if len(pt) >= 4 && strings.Contains(sealed, pt) {
			t.Fatalf("sealed %q contains plaintext", sealed)
		}
		got, err := kr.Open(sealed, []byte(ad))
		if err != nil || string(got) != pt {
			t.Fatalf("round trip of %q: %q, %v", pt, got, err)
		}
		if _, err := kr.Open(sealed, []byte(ad+"x")); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("other AD opened: %v", err)
		}
		if kr.NeedsRotation(sealed) {
			t.Fatalf("fresh value needs rotation")
		}
	})
}
