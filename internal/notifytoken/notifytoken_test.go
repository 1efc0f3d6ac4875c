package notifytoken_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/store"
)

const aud = "https://herald.example/fhir"

var key = []byte("0123456789abcdef0123456789abcdef")

func TestMintVerify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	iss, err := notifytoken.New(key, 0, clock)
	require.NoError(t, err)
	refs := []store.VersionRef{{Type: "Encounter", ID: "e1", Version: 3}, {Type: "Patient", ID: "p1", Version: 1}}
	alice := store.SubscriptionOwner{Client: "alice", Context: "system"}
	tok, exp, err := iss.Mint(aud, "sub-1", alice, refs)
	require.NoError(t, err)
	require.Equal(t, now.Add(notifytoken.DefaultTTL), exp)
	require.True(t, notifytoken.Is(tok))

	g, err := iss.Verify(aud, tok)
	require.NoError(t, err)
	require.Equal(t, "sub-1", g.Subscription)
	require.Equal(t, refs, g.Refs)
	require.True(t, g.Allows("Encounter", "e1", 0))
	require.True(t, g.Allows("Encounter", "e1", 3))
	require.False(t, g.Allows("Encounter", "e1", 2), "another version")
	require.False(t, g.Allows("Encounter", "e2", 0))
	require.False(t, g.Allows("Patient", "e1", 0))
	require.True(t, g.OwnedBy(alice))
	require.False(t, g.OwnedBy(store.SubscriptionOwner{Client: "ops", Context: "system"}), "another owner at the same id")
	require.False(t, g.OwnedBy(store.SubscriptionOwner{Client: "alice", Context: "patient/p2"}), "another launch context")
	require.NotContains(t, tok, "alice", "the owner is a digest")

	// Expired.
	later, _ := notifytoken.New(key, 0, func() time.Time { return now.Add(notifytoken.DefaultTTL + time.Second) })
	_, err = later.Verify(aud, tok)
	require.ErrorIs(t, err, notifytoken.ErrInvalid)
	// Another key, another audience.
	other, _ := notifytoken.New([]byte(strings.Repeat("x", 32)), 0, clock)
	_, err = other.Verify(aud, tok)
	require.ErrorIs(t, err, notifytoken.ErrInvalid)
	_, err = iss.Verify("https://other.example/fhir", tok)
	require.ErrorIs(t, err, notifytoken.ErrInvalid)
	// A token signed with the same key but without the typ header (as a
	// SMART token would be) is not a notification token.
	plain, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "sub-1", "aud": aud, "iss": aud,
		"exp": now.Add(time.Minute).Unix(), "herald_resources": []string{"Encounter/e1/_history/3"}}).SignedString(key)
	require.NoError(t, err)
	require.False(t, notifytoken.Is(plain))
	_, err = iss.Verify(aud, plain)
	require.ErrorIs(t, err, notifytoken.ErrInvalid)
	// Garbage.
	require.False(t, notifytoken.Is("not a token"))
	_, err = iss.Verify(aud, "a.b.c")
	require.ErrorIs(t, err, notifytoken.ErrInvalid)
}
