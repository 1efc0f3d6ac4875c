// Package secrets encrypts Subscription signing secrets and channel.header
// values at rest, and carries plaintext secrets around without leaking them.
//
// # Sealed values
//
// [Keyring.Seal] encrypts with AES-256-GCM under the keyring's primary key and
// a fresh random 96-bit nonce, and returns a compact, self-describing string
//
//	v1.<key id>.<base64url(nonce || ciphertext || tag)>
//
// (base64url without padding, RFC 4648 section 5). [Keyring.Open] picks the
// key by id, so values sealed before a key rotation still open as long as the
// old key is in the keyring; [Keyring.NeedsRotation] and [Keyring.Reseal]
// move them to the primary key.
//
// Associated data binds a ciphertext to its context: a value sealed for one
// subscription does not open for another. The GCM associated data is
// "v1.<key id>." followed by the caller's associated data, which also binds
// the format version and key id. When one row holds several sealed values
// (the signing secret and each header value), include the purpose too, so
// ciphertexts cannot be swapped between columns; [AssociatedData] builds an
// unambiguous encoding of several parts.
//
// A key may seal at most 2^32 values (random nonces); rotate long before.
//
// Errors never contain plaintext or key material.
//
// # Key ids
//
// A key id is 1 to 64 characters from [A-Za-z0-9_-]. A key given without an id
// gets [DeriveKeyID]: the first 6 bytes of
// SHA-256("herald/secrets key-id v1" || 0x00 || key), in lower-case hex (12
// characters). It identifies the key without revealing it and is stable, so a
// deployment configured with only HERALD_SECRET_KEY keeps the same id across
// restarts.
//
// # Secret
//
// [Secret] holds a plaintext secret; every way of printing, logging or
// marshalling it renders "[redacted]", and only [Secret.Reveal] returns it.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// version is the sealed-value format prefix.
const version = "v1"

// maxKeyIDLength bounds key ids.
const maxKeyIDLength = 64

// Errors; Open's errors wrap one of these.
var (
	// ErrMalformed: the value is not a v1 sealed string.
	ErrMalformed = errors.New("secrets: malformed sealed value")
	// ErrUnknownKey: the value names a key id the keyring does not hold.
	ErrUnknownKey = errors.New("secrets: sealed with an unknown key")
	// ErrAuthentication: wrong key, wrong associated data, or tampered value.
	ErrAuthentication = errors.New("secrets: message authentication failed")
	// ErrInvalidKey: a key or key id is unusable.
	ErrInvalidKey = errors.New("secrets: invalid key")
)

// Key is one AES-256 key and its id. Printing, logging or marshalling a Key
// never shows its bytes.
type Key struct {
	// ID names the key in sealed values; empty means [DeriveKeyID].
	ID string
	// Bytes is the 32-byte key.
	Bytes []byte
}

// String shows the id only.
func (k Key) String() string { return "secrets.Key{ID:" + strconv.Quote(k.ID) + " Bytes:[redacted]}" }

// GoString shows the id only.
func (k Key) GoString() string { return k.String() }

// Format prints [Key.String] for every verb, so no fmt verb reveals the bytes.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue logs the id only.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("bytes", redacted))
}

// MarshalJSON marshals the id only.
func (k Key) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID    string `json:"id"`
		Bytes string `json:"bytes"`
	}{k.ID, redacted})
}

// GenerateKey returns a new random key; an empty id is derived.
func GenerateKey(id string) Key {
	b := make([]byte, KeySize)
	_, _ = rand.Read(b) // never fails
	if id == "" {
		id = DeriveKeyID(b)
	}
	return Key{ID: id, Bytes: b}
}

// KeyFromBase64 decodes a 32-byte key written in standard or URL-safe base64,
// padded or not, ignoring surrounding white space (HERALD_SECRET_KEY; make
// one with `openssl rand -base64 32`). An empty id is derived with
// [DeriveKeyID]. Errors never quote b64.
func KeyFromBase64(id, b64 string) (Key, error) {
	b64 = strings.TrimSpace(b64)
	if b64 == "" {
		return Key{}, fmt.Errorf("%w: key is empty", ErrInvalidKey)
	}
	var b []byte
	err := errors.New("contains CR or LF") // the decoders would skip them
	if !strings.ContainsAny(b64, "\r\n") {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err = enc.Strict().DecodeString(b64); err == nil {
				break
			}
		}
	}
	if err != nil {
		return Key{}, fmt.Errorf("%w: key is not valid base64", ErrInvalidKey)
	}
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: key must be %d bytes (base64 of %d random bytes, such as `openssl rand -base64 32`), got %d bytes", ErrInvalidKey, KeySize, KeySize, len(b))
	}
	if id == "" {
		id = DeriveKeyID(b)
	}
	if err := checkKeyID(id); err != nil {
		return Key{}, err
	}
	return Key{ID: id, Bytes: b}, nil
}

// DeriveKeyID is the default id of a key: the first 6 bytes of
// SHA-256("herald/secrets key-id v1" || 0x00 || key) in lower-case hex.
func DeriveKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("herald/secrets key-id v1\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:6])
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLength {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkKeyID(id string) error {
	if !validKeyID(id) {
		return fmt.Errorf("%w: key id must be 1 to %d characters from A-Z a-z 0-9 _ -", ErrInvalidKey, maxKeyIDLength)
	}
	return nil
}

type keyEntry struct {
	id   string
	aead cipher.AEAD // GCM with random nonces; stateless, safe for concurrent use
}

// Keyring seals with its primary key and opens with any of its keys. It is
// immutable and safe for concurrent use.
type Keyring struct {
	primary *keyEntry
	byID    map[string]*keyEntry
}

// NewKeyring builds a keyring that seals with primary and opens values sealed
// with primary or any of old. Keys with an empty ID get [DeriveKeyID]. Every
// key must be 32 bytes and not all zero; ids and keys must be distinct. The
// keyring keeps no reference to the callers' byte slices.
func NewKeyring(primary Key, old ...Key) (*Keyring, error) {
	kr := &Keyring{byID: make(map[string]*keyEntry, 1+len(old))}
	var seen [][]byte
	for i, k := range append([]Key{primary}, old...) {
		if len(k.Bytes) != KeySize {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want %d", ErrInvalidKey, i, len(k.Bytes), KeySize)
		}
		if subtle.ConstantTimeCompare(k.Bytes, make([]byte, KeySize)) == 1 {
			return nil, fmt.Errorf("%w: key %d is all zero", ErrInvalidKey, i)
		}
		id := k.ID
		if id == "" {
			id = DeriveKeyID(k.Bytes)
		}
		if err := checkKeyID(id); err != nil {
			return nil, err
		}
		if _, dup := kr.byID[id]; dup {
			return nil, fmt.Errorf("%w: key id %q is used twice", ErrInvalidKey, id)
		}
		for _, s := range seen {
			if bytes.Equal(s, k.Bytes) {
				return nil, fmt.Errorf("%w: key %q is the same key as another", ErrInvalidKey, id)
			}
		}
		seen = append(seen, k.Bytes)
		block, err := aes.NewCipher(k.Bytes) // copies the key schedule
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		e := &keyEntry{id: id, aead: aead}
		kr.byID[id] = e
		if i == 0 {
			kr.primary = e
		}
	}
	return kr, nil
}

// PrimaryID is the id of the key that seals.
func (kr *Keyring) PrimaryID() string {
	if kr == nil || kr.primary == nil {
		return ""
	}
	return kr.primary.id
}

// String names the keys by id.
func (kr *Keyring) String() string {
	if kr == nil || kr.primary == nil {
		return "secrets.Keyring{}"
	}
	return fmt.Sprintf("secrets.Keyring{primary:%q keys:%d}", kr.primary.id, len(kr.byID))
}

// Format prints [Keyring.String] for every verb.
func (kr *Keyring) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, kr.String()) }

// fullAD is the GCM associated data: the value's header, then the caller's.
func fullAD(id string, ad []byte) []byte {
	b := make([]byte, 0, len(version)+len(id)+2+len(ad))
	b = append(b, version...)
	b = append(b, '.')
	b = append(b, id...)
	b = append(b, '.')
	return append(b, ad...)
}

// Seal encrypts plaintext under the primary key, bound to associatedData,
// and returns "v1.<key id>.<base64url(nonce||ciphertext||tag)>".
func (kr *Keyring) Seal(plaintext, associatedData []byte) (string, error) {
	if kr == nil || kr.primary == nil {
		return "", errors.New("secrets: Seal on an empty keyring")
	}
	p := kr.primary
	out := p.aead.Seal(nil, nil, plaintext, fullAD(p.id, associatedData))
	return version + "." + p.id + "." + base64.RawURLEncoding.EncodeToString(out), nil
}

// split parses the header of a sealed value.
func split(sealed string) (id, payload string, err error) {
	v, rest, ok := strings.Cut(sealed, ".")
	if !ok || v != version {
		return "", "", fmt.Errorf("%w: not a %s value", ErrMalformed, version)
	}
	id, payload, ok = strings.Cut(rest, ".")
	if !ok || !validKeyID(id) {
		return "", "", fmt.Errorf("%w: bad key id", ErrMalformed)
	}
	return id, payload, nil
}

// Open decrypts a value from [Keyring.Seal] with the key it names, checking
// associatedData. Errors wrap [ErrMalformed], [ErrUnknownKey] or
// [ErrAuthentication] and never contain plaintext.
func (kr *Keyring) Open(sealed string, associatedData []byte) ([]byte, error) {
	if kr == nil || kr.primary == nil {
		return nil, errors.New("secrets: Open on an empty keyring")
	}
	id, payload, err := split(sealed)
	if err != nil {
		return nil, err
	}
	k, ok := kr.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
	}
	// Only the canonical unpadded base64url alphabet: the decoder would skip
	// CR and LF, making sealed strings malleable.
	for i := range len(payload) {
		c := payload[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	if len(raw) < k.aead.Overhead() {
		return nil, fmt.Errorf("%w: payload too short", ErrMalformed)
	}
	pt, err := k.aead.Open(nil, nil, raw, fullAD(id, associatedData))
	if err != nil {
		return nil, ErrAuthentication
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// NeedsRotation reports whether sealed is not a value sealed with the primary
// key: it names an older or unknown key, or is malformed. It reads the header
// only; [Keyring.Reseal] does the rotation.
func (kr *Keyring) NeedsRotation(sealed string) bool {
	id, _, err := split(sealed)
	return err != nil || id != kr.PrimaryID()
}

// Reseal opens sealed with whichever key it names and, unless that is already
// the primary key, seals the plaintext again under the primary key with the
// same associated data. A value already under the primary key is returned
// unchanged after checking that it opens.
func (kr *Keyring) Reseal(sealed string, associatedData []byte) (string, error) {
	pt, err := kr.Open(sealed, associatedData)
	if err != nil {
		return "", err
	}
	defer clear(pt)
	if !kr.NeedsRotation(sealed) {
		return sealed, nil
	}
	return kr.Seal(pt, associatedData)
}

// AssociatedData encodes parts unambiguously (each as a uvarint length and
// its bytes), for associated data made of several fields, such as
// AssociatedData("Subscription", id, "signing-secret").
func AssociatedData(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}
