package wschannel_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// nextClose reads the next frame and requires it to be the server's close.
func (c *wsClient) nextClose() (websocket.StatusCode, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	require.Error(c.t, err, "expected the socket to close, got a message: %s", b)
	var ce websocket.CloseError
	require.True(c.t, errors.As(err, &ce), "a close frame: %v", err)
	return ce.Code, ce.Reason
}

// TestTokensPerSocketBounded: every bound token is a hold in the store,
// renewed every HoldFor/3 while the socket lives. Fresh tokens for a
// Subscription already bound add no binding, so the bindings limit never
// stopped them: one socket could hold any number of tokens and make the
// instance renew each of them forever (one store write per token per
// renewal). A socket holds at most BindingsPerSocket tokens.
func TestTokensPerSocketBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstance(t, open(), wschannel.Limits{BindingsPerSocket: 3})
		a := in.subscribe("app", "id-only", 0)
		b := in.subscribe("app", "id-only", 0)
		c := dial(t, wschannel.WebsocketURL(in.base))
		c.send("bind-with-token " + in.bindingToken("app", "?id="+a)["token"][0])
		c.nextOf(notify.Handshake)
		for range 3 { // three more tokens for the same, already bound Subscription
			c.send("bind-with-token " + in.bindingToken("app", "?id="+a)["token"][0])
		}
		// A token with a new Subscription: a handshake if every token above
		// was taken.
		c.send("bind-with-token " + in.bindingToken("app", "?id="+b)["token"][0])
		code, reason := c.nextClose()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "binding tokens")
	})
}

// TestBindingEndsWhenOwnerChanges: an admin may create a Subscription at
// the id of a deleted one, and then owns it. A socket bound to the deleted
// Subscription (its owner's token) must not follow the new one: between
// two polls nothing told it the first was gone, and its cursor then
// carried the admin's Subscription's events (and handshake) to the old
// owner. A bound Subscription whose owner or launch context changed ends
// the socket, as a deleted one does.
func TestBindingEndsWhenOwnerChanges(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstancePolling(t, open(), wschannel.Limits{}, time.Hour) // only commit wake-ups
		id := in.subscribe("app", "id-only", 0)
		c := dial(t, wschannel.WebsocketURL(in.base))
		c.send("bind-with-token " + in.bindingToken("app", "?id="+id)["token"][0])
		c.nextOf(notify.Handshake)
		in.encounter("e1")
		require.Equal(t, []int64{1}, c.nextOf(notify.EventNotification).Numbers())

		owner, err := auth.MintHS256(hsSecret, auth.MintClaims{ClientID: "app", Scope: "system/Subscription.cruds", TTL: time.Hour})
		require.NoError(t, err)
		r := in.do("DELETE", "/fhir/Subscription/"+id, owner, "")
		require.Contains(t, []int{200, 204}, r.status, string(r.body))
		admin, err := auth.MintHS256(hsSecret, auth.MintClaims{ClientID: "ops", Scope: "herald.admin system/Subscription.crus system/*.rs", TTL: time.Hour})
		require.NoError(t, err)
		r = in.do("PUT", "/fhir/Subscription/"+id, admin, strings.Replace(subscriptionJSON(t, "full-resource"),
			`{`, `{"id":"`+id+`",`, 1))
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		st, err := in.st.Subscription(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, "ops", st.Owner, "the admin owns the new Subscription")

		in.encounter("e2")
		in.encounter("e3") // past the old cursor: due on the old socket
		code, reason := c.nextClose()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "Subscription/"+id)
	})
}

// TestShutdownReleasesHoldsBeforeClosing: at shutdown a socket is closed
// with 1001 "reconnect and bind again", and the client does so at once on
// another instance. The token's hold must be gone by then: it was released
// only after the close handshake (up to 5 s for a client that does not
// answer it) and after Run had returned, so the other instance refused the
// same token with 1008 "bound to another live socket" for a while (and
// herald serve could close the store before the release ran). Run now
// returns once every socket has released what it holds.
func TestShutdownReleasesHoldsBeforeClosing(t *testing.T) {
	url := pgtestURL(t)
	a := newInstance(t, openPG(t, url), wschannel.Limits{})
	b := newInstance(t, openPG(t, url), wschannel.Limits{})
	a.subscribe("app", "id-only", 0)
	p := a.bindingToken("app", "")
	c := dial(t, wschannel.WebsocketURL(a.base))
	c.send("bind-with-token " + p["token"][0])
	c.nextOf(notify.Handshake)

	a.shutdown() // the client has not read the close frame yet
	again := dial(t, wschannel.WebsocketURL(b.base))
	again.send("bind-with-token " + p["token"][0])
	again.nextOf(notify.Handshake)
	code, reason := c.nextClose()
	require.Equal(t, websocket.StatusGoingAway, code)
	require.Contains(t, reason, "bind again")
}

// TestBindingEndsWhenRecreated: the owner deletes its Subscription and
// creates it again at the same id while a socket is bound to it. The new
// Subscription numbers its events from 1 again; a socket that followed it
// with the old cursor would skip them silently. The binding ends instead,
// and binding again starts from the new Subscription's handshake.
func TestBindingEndsWhenRecreated(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstancePolling(t, open(), wschannel.Limits{}, time.Hour) // only commit wake-ups
		id := in.subscribe("app", "id-only", 0)
		c := dial(t, wschannel.WebsocketURL(in.base))
		token := in.bindingToken("app", "?id="+id)["token"][0]
		c.send("bind-with-token " + token)
		c.nextOf(notify.Handshake)
		in.encounter("e1")
		in.encounter("e2")
		var got []int64 // one notification or two
		for len(got) < 2 {
			got = append(got, c.nextOf(notify.EventNotification).Numbers()...)
		}
		require.Equal(t, []int64{1, 2}, got)

		owner, err := auth.MintHS256(hsSecret, auth.MintClaims{ClientID: "app", Scope: "system/Subscription.cruds system/*.rs", TTL: time.Hour})
		require.NoError(t, err)
		r := in.do("DELETE", "/fhir/Subscription/"+id, owner, "")
		require.Contains(t, []int{200, 204}, r.status, string(r.body))
		r = in.do("PUT", "/fhir/Subscription/"+id, owner, strings.Replace(subscriptionJSON(t, "id-only"), `{`, `{"id":"`+id+`",`, 1))
		require.Equal(t, http.StatusCreated, r.status, string(r.body))

		for _, e := range []string{"e3", "e4", "e5"} { // the third passes the old cursor
			in.encounter(e)
		}
		code, reason := c.nextClose()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "Subscription/"+id)

		again := dial(t, wschannel.WebsocketURL(in.base))
		again.send("bind-with-token " + token)
		require.Equal(t, int64(3), again.nextOf(notify.Handshake).EventsSinceStart, "the new Subscription's own count")
	})
}
