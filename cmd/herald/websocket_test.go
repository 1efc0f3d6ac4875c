package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// TestTwoProcessesWebsocket (issue 15): two `herald serve` processes on one
// database. The socket lives on A; the token comes from B and the writes
// commit on B; A delivers every event in order. The websocket-url follows
// the https base (wss://), and the token cannot bind a second live socket
// on B.
func TestTwoProcessesWebsocket(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t, nil)
	a, b := f.start("A"), f.start("B")
	body := strings.NewReplacer("TOPIC", encounterStart, "BACKPORT", backport).Replace(`{
		"resourceType": "Subscription", "status": "requested", "reason": "websocket across instances", "criteria": "TOPIC",
		"_criteria": {"extension": [{"url": "BACKPORTbackport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"}]},
		"channel": {"type": "websocket", "payload": "application/fhir+json",
			"_payload": {"extension": [{"url": "BACKPORTbackport-payload-content", "valueCode": "id-only"}]}}}`)
	status, resp, err := call("POST", a.url+"/fhir/Subscription", f.owner, body)
	require.NoError(t, err)
	require.Equal(t, 201, status, string(resp))

	status, resp, err = call("GET", b.url+"/fhir/Subscription/$get-ws-binding-token", f.owner, "")
	require.NoError(t, err)
	require.Equal(t, 200, status, string(resp))
	var params struct{ Parameter []map[string]string }
	require.NoError(t, json.Unmarshal(resp, &params))
	var token, url string
	for _, p := range params.Parameter {
		switch p["name"] {
		case "token":
			token = p["valueString"]
		case "websocket-url":
			url = p["valueUrl"]
		}
	}
	require.Equal(t, "wss://herald.example/fhir/$subscription-ws", url, "an https base gives wss://")

	socketOf := func(p *heraldProc) string { return "ws" + strings.TrimPrefix(p.url, "http") + wschannel.Path }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, socketOf(a), nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte("bind-with-token "+token)))
	next := func() notify.Summary {
		t.Helper()
		_, msg, err := conn.Read(ctx)
		require.NoError(t, err)
		sum, err := notify.Summarize(msg)
		require.NoError(t, err)
		return sum
	}
	require.Equal(t, notify.Handshake, next().Type)

	other, _, err := websocket.Dial(ctx, socketOf(b), nil)
	require.NoError(t, err)
	defer other.CloseNow()
	require.NoError(t, other.Write(ctx, websocket.MessageText, []byte("bind-with-token "+token)))
	_, _, err = other.Read(ctx)
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	require.Contains(t, ce.Reason, "bound to another live socket", "one token, one live socket, across processes")

	const writes = 20
	for i := range writes {
		f.mustEncounter(b, fmt.Sprintf("ws-%d", i))
	}
	var numbers []int64
	for len(numbers) < writes {
		if m := next(); m.Type == notify.EventNotification {
			numbers = append(numbers, m.Numbers()...)
		}
	}
	want := make([]int64, writes)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, numbers, "A delivers B's writes in order, none lost")
}
