package wschannel_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// TestWebsocketNotificationBoundedByBytes: a full-resource websocket
// notification carries at most the byte budget of resources (Config.
// MaxBytes, HERALD_MAX_EVENTS_BYTES), never less than its first event, as
// $events and rest-hook do; the rest follow in order. Before, maxCount
// alone bounded it: a transaction of 16 Encounters of 40 KiB went out as
// one 640 KiB message under a 160 KiB budget (100 x 4 MiB: 400 MiB a
// message, and a socket queues up to 256 messages for a reader that
// falls behind).
func TestWebsocketNotificationBoundedByBytes(t *testing.T) {
	const events, size, budget = 16, 40 << 10, 160 << 10
	eachStore(t, func(t *testing.T, open func() store.Store) {
		in := newInstancePolling(t, open(), wschannel.Limits{}, 200*time.Millisecond, func(c *wschannel.Config) { c.MaxBytes = budget })
		id := in.subscribe("app", "full-resource", 0)
		c := dial(t, wschannel.WebsocketURL(in.base))
		c.send("bind-with-token " + in.bindingToken("app", "?id="+id)["token"][0])
		c.nextOf(notify.Handshake)

		var entries []any
		for i := range events {
			pad := make([]byte, size*3/4)
			_, _ = rand.Read(pad)
			var enc map[string]any
			require.NoError(t, json.Unmarshal([]byte(encounterJSON(fmt.Sprintf("big%d", i), "p1")), &enc))
			enc["extension"] = []any{map[string]any{"url": "https://attack.example/pad", "valueString": base64.StdEncoding.EncodeToString(pad)}}
			entries = append(entries, map[string]any{"resource": enc,
				"request": map[string]any{"method": "PUT", "url": fmt.Sprintf("Encounter/big%d", i)}})
		}
		tx, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		require.NoError(t, err)
		r := in.do("POST", "/fhir", publisherToken(t), string(tx))
		require.Equal(t, http.StatusOK, r.status, string(r.body))

		var got []int64
		for len(got) < events {
			m := c.nextOf(notify.EventNotification)
			t.Logf("notification of events %v: %d KiB", m.Numbers(), len(m.body)>>10)
			require.LessOrEqual(t, len(m.body), budget+2*size, "a notification carries more than the byte budget and one event")
			got = append(got, m.Numbers()...)
		}
		want := make([]int64, events)
		for i := range want {
			want[i] = int64(i + 1)
		}
		require.Equal(t, want, got)
	})
}
