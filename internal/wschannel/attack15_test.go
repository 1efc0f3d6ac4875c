package wschannel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

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
