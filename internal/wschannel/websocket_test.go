package wschannel_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// TestWebsocketFlow drives the channel end to end with a real client: a
// token for all the caller's websocket Subscriptions, bind, one handshake
// each, events with each payload content, a heartbeat, reconnect with
// nothing lost, and a second live socket refused.
func TestWebsocketFlow(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstance(t, open(), wschannel.Limits{})
		empty := in.subscribe("app", "empty", 0)
		idOnly := in.subscribe("app", "id-only", 0)
		full := in.subscribe("app", "full-resource", 1)
		in.subscribe("other-app", "id-only", 0) // not the caller's

		p := in.bindingToken("app", "")
		require.ElementsMatch(t, []string{empty, idOnly, full}, p["subscription"], "no id: every websocket Subscription of the caller")
		require.Len(t, p["token"], 1)
		require.True(t, strings.HasPrefix(p["websocket-url"][0], "ws://"), "an http base gives ws://")
		require.Equal(t, strings.Replace(in.base, "http://", "ws://", 1)+"/$subscription-ws", p["websocket-url"][0])
		exp, err := time.Parse(time.RFC3339, p["expiration"][0])
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(time.Minute), exp, 5*time.Second, "the token lives HERALD_WS_TOKEN_TTL")

		c := dial(t, p["websocket-url"][0])
		c.send("bind-with-token " + p["token"][0])
		got := map[string]message{}
		for range 3 {
			m := c.nextOf(notify.Handshake)
			got[m.SubscriptionID] = m
			require.Equal(t, "active", m.Status, "the handshake reports the Subscription active")
			require.Equal(t, int64(0), m.EventsSinceStart)
		}
		require.Len(t, got, 3, "one handshake per bound Subscription")
		for _, id := range []string{empty, idOnly, full} {
			require.Equal(t, "active", in.status(id), "binding activates the Subscription")
		}

		hb := c.nextOf(notify.Heartbeat)
		require.Equal(t, full, hb.SubscriptionID, "only the Subscription with a heartbeat period gets heartbeats")

		in.encounter("e1")
		byContent := map[string]message{}
		for range 3 {
			m := c.nextOf(notify.EventNotification)
			byContent[m.SubscriptionID] = m
			require.Equal(t, []int64{1}, m.Numbers())
		}
		require.Nil(t, focusOf(t, byContent[empty].body), "empty: no focus")
		require.Contains(t, focusOf(t, byContent[idOnly].body)["reference"], in.base+"/Encounter/e1", "id-only: the focus")
		require.False(t, carriesResource(t, byContent[idOnly].body), "id-only: no resource")
		require.True(t, carriesResource(t, byContent[full].body), "full-resource: the resource, which the owner may read")

		// A second live socket with the same token is refused.
		other := dial(t, p["websocket-url"][0])
		other.send("bind-with-token " + p["token"][0])
		code, reason := other.closed()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "bound to another live socket")

		// Disconnect; events committed meanwhile are in $events, and the
		// handshake after re-binding says how many there are.
		require.NoError(t, c.conn.Close(websocket.StatusNormalClosure, "bye"))
		in.waitSockets(0)
		in.encounter("e2")
		in.encounter("e3")
		again := dial(t, p["websocket-url"][0])
		again.send("bind-with-token " + p["token"][0])
		for range 3 {
			m := again.nextOf(notify.Handshake)
			require.Equal(t, int64(3), m.EventsSinceStart, "%s: the re-bind handshake counts the missed events", m.SubscriptionID)
		}
		r := in.do("GET", "/fhir/Subscription/"+idOnly+"/$events?eventsSinceNumber=2", clientToken(t, "app"), "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		missed, err := notify.Summarize(r.body)
		require.NoError(t, err)
		require.Equal(t, []int64{2, 3}, missed.Numbers(), "nothing is lost: $events has what came while disconnected")
		in.encounter("e4")
		for range 3 {
			m := again.nextOf(notify.EventNotification)
			require.Equal(t, []int64{4}, m.Numbers(), "delivery resumes after the bind point")
		}
	})
}

// TestWebsocketTokenRefusals: forged, expired, bearer-as-binding and
// binding-as-bearer tokens, someone else's Subscription, and a
// Subscription of the other channel.
func TestWebsocketTokenRefusals(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstance(t, open(), wschannel.Limits{})
		id := in.subscribe("app", "id-only", 0)
		url := wschannel.WebsocketURL(in.base)
		p := in.bindingToken("app", "?id="+id)
		require.Equal(t, []string{id}, p["subscription"])

		refused := func(name, message string) {
			t.Helper()
			c := dial(t, url)
			c.send(message)
			code, reason := c.closed()
			require.Equal(t, websocket.StatusPolicyViolation, code, name)
			require.Equal(t, "invalid or expired binding token", reason, name)
		}
		refused("forged", "bind-with-token hwsb1.v1.abc.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		tampered := []byte(p["token"][0])
		tampered[len(tampered)-3] ^= 1
		refused("tampered", "bind-with-token "+string(tampered))
		refused("bearer token as binding token", "bind-with-token "+clientToken(t, "app"))
		expiring := &wschannel.Tokens{Keys: in.tokens.Keys, TTL: time.Minute, Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }}
		expired, _, err := expiring.Mint("app", "system", []string{id})
		require.NoError(t, err)
		refused("expired", "bind-with-token "+expired)

		r := in.do("GET", "/fhir/Subscription/"+id, p["token"][0], "")
		require.Equal(t, http.StatusUnauthorized, r.status, "a binding token is never a bearer token")

		r = in.do("GET", "/fhir/Subscription/"+id+"/$get-ws-binding-token", clientToken(t, "other-app"), "")
		require.Equal(t, http.StatusNotFound, r.status, "another owner's Subscription: %s", r.body)
		r = in.do("GET", "/fhir/Subscription/$get-ws-binding-token", clientToken(t, "nobody"), "")
		require.Equal(t, http.StatusNotFound, r.status, "no websocket Subscription at all: %s", r.body)
		require.Contains(t, string(r.body), "OperationOutcome")
		require.NoError(t, in.st.AddEndpoint(t.Context(), store.AllowedEndpoint{ID: "hooks", URLPrefix: "https://hooks.example.net/", CreatedAt: time.Now()}))
		restHook := in.do("POST", "/fhir/Subscription", clientToken(t, "app"), strings.Replace(subscriptionJSON(t, "id-only"),
			`"type":"websocket"`, `"type":"rest-hook","endpoint":"https://hooks.example.net/1"`, 1))
		require.Equal(t, http.StatusCreated, restHook.status, string(restHook.body))
		var rh map[string]any
		require.NoError(t, json.Unmarshal(restHook.body, &rh))
		r = in.do("GET", "/fhir/Subscription/"+rh["id"].(string)+"/$get-ws-binding-token", clientToken(t, "app"), "")
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "a rest-hook Subscription cannot be bound: %s", r.body)

		r = in.do("GET", "/fhir/metadata", "", "")
		require.Contains(t, string(r.body), `"name":"get-ws-binding-token","definition":"http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-get-ws-binding-token"`)

		r = in.do("POST", "/fhir/Subscription/$get-ws-binding-token", clientToken(t, "app"),
			`{"resourceType":"Parameters","parameter":[{"name":"id","valueString":"`+id+`"}]}`)
		require.Equal(t, http.StatusOK, r.status, "the POST form with Parameters: %s", r.body)
	})
}

// TestWebsocketRevocation: a suspended client's binding is closed with the
// reason, and its Subscription switched off as rest-hook delivery does.
func TestWebsocketRevocation(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstance(t, open(), wschannel.Limits{})
		id := in.subscribe("app", "id-only", 0)
		p := in.bindingToken("app", "")
		c := dial(t, p["websocket-url"][0])
		c.send("bind-with-token " + p["token"][0])
		c.nextOf(notify.Handshake)

		_, err := in.st.PutClient(t.Context(), store.Client{ClientID: "app", Status: "suspended", MaxPayload: "id-only", UpdatedAt: time.Now()})
		require.NoError(t, err)
		code, reason := c.closed()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "Subscription/"+id+" revoked")
		require.Equal(t, "off", in.status(id), "revoked as rest-hook revokes: switched off")
		in.waitSockets(0)

		again := dial(t, p["websocket-url"][0])
		again.send("bind-with-token " + p["token"][0])
		code, reason = again.closed()
		require.Equal(t, websocket.StatusPolicyViolation, code, "an off Subscription cannot be bound")
		require.Contains(t, reason, "is off")
	})
}

// TestWebsocketLimits: idle sockets, big messages, bindings per socket and
// sockets per client.
func TestWebsocketLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		impatient := newInstance(t, st, wschannel.Limits{BindTimeout: 300 * time.Millisecond})
		idle := dial(t, wschannel.WebsocketURL(impatient.base))
		code, reason := idle.closed()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "no bind-with-token within")

		in := newInstance(t, st, wschannel.Limits{MessageBytes: 2048, BindingsPerSocket: 1, SocketsPerClient: 1})
		a := in.subscribe("app", "id-only", 0)
		b := in.subscribe("app", "id-only", 0)
		url := wschannel.WebsocketURL(in.base)

		big := dial(t, url)
		big.send("bind-with-token " + strings.Repeat("x", 4096))
		code, _ = big.closed()
		require.Equal(t, websocket.StatusMessageTooBig, code)

		two := in.bindingToken("app", "?id="+a+","+b)
		c := dial(t, url)
		c.send("bind-with-token " + two["token"][0])
		code, reason = c.closed()
		require.Equal(t, websocket.StatusPolicyViolation, code)
		require.Contains(t, reason, "at most 1 Subscriptions")

		first := dial(t, url)
		first.send("bind-with-token " + in.bindingToken("app", "?id="+a)["token"][0])
		first.nextOf(notify.Handshake)
		second := dial(t, url)
		second.send("bind-with-token " + in.bindingToken("app", "?id="+b)["token"][0])
		code, reason = second.closed()
		require.Equal(t, websocket.StatusTryAgainLater, code)
		require.Contains(t, reason, "too many sockets")
	})
}

// TestWebsocketTwoInstances: the socket lives on one instance, writes
// commit on the other; events arrive in order, none lost, and the token
// cannot bind a second live socket on the other instance.
func TestWebsocketTwoInstances(t *testing.T) {
	url := pgtestURL(t)
	a := newInstance(t, openPG(t, url), wschannel.Limits{})
	b := newInstance(t, openPG(t, url), wschannel.Limits{})
	id := a.subscribe("app", "id-only", 0)
	p := b.bindingToken("app", "")
	require.Equal(t, []string{id}, p["subscription"])

	c := dial(t, wschannel.WebsocketURL(a.base))
	c.send("bind-with-token " + p["token"][0])
	c.nextOf(notify.Handshake)

	elsewhere := dial(t, wschannel.WebsocketURL(b.base))
	elsewhere.send("bind-with-token " + p["token"][0])
	code, reason := elsewhere.closed()
	require.Equal(t, websocket.StatusPolicyViolation, code)
	require.Contains(t, reason, "bound to another live socket", "one token, one live socket, across instances")

	const writes = 30
	for i := range writes {
		b.encounter("e" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	var numbers []int64
	for len(numbers) < writes {
		numbers = append(numbers, c.nextOf(notify.EventNotification).Numbers()...)
	}
	want := make([]int64, writes)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, numbers, "in order, without gaps, from the other instance's writes")
}

func (in *instance) status(id string) string {
	in.t.Helper()
	st, err := in.st.Subscription(in.t.Context(), id)
	require.NoError(in.t, err)
	return st.Status
}

// waitSockets waits until the instance has n sockets open.
func (in *instance) waitSockets(n int) {
	in.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for in.sockets.Sockets() != n {
		require.True(in.t, time.Now().Before(deadline), "still %d sockets", in.sockets.Sockets())
		<-time.After(10 * time.Millisecond) // polling a count nothing signals
	}
}

// focusOf is the first notification event's focus, nil when none.
func focusOf(t *testing.T, body []byte) map[string]any {
	for _, e := range entries(t, body) {
		if e.Resource["resourceType"] == "Parameters" {
			for _, prm := range e.Resource["parameter"].([]any) {
				pm := prm.(map[string]any)
				if pm["name"] != "notification-event" {
					continue
				}
				for _, part := range pm["part"].([]any) {
					if pp := part.(map[string]any); pp["name"] == "focus" {
						return pp["valueReference"].(map[string]any)
					}
				}
			}
		}
	}
	return nil
}

// carriesResource reports whether the Bundle carries an Encounter.
func carriesResource(t *testing.T, body []byte) bool {
	for _, e := range entries(t, body) {
		if e.Resource["resourceType"] == "Encounter" {
			return true
		}
	}
	return false
}

type entry struct{ Resource map[string]any }

func entries(t *testing.T, body []byte) []entry {
	var b struct{ Entry []entry }
	require.NoError(t, json.Unmarshal(body, &b))
	return b.Entry
}
