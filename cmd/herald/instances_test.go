package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInstancesShareOneState (issue 12, finding 5): two `herald serve`
// processes on one database. Instance A retires a topic; within a second
// instance B refuses new Subscriptions on it and appends no events for it,
// and a client A suspends is refused by B as well.
func TestInstancesShareOneState(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t, nil)
	a, b := f.start("A"), f.start("B")
	f.allowReceiver(a)
	id := f.subscribe(b, "/hook/shared")
	f.waitHandshakes(id)

	status, body, err := call("GET", a.url+"/fhir/SubscriptionTopic/encounter-start", f.owner, "")
	require.NoError(t, err)
	require.Equal(t, 200, status, string(body))
	var topic map[string]any
	require.NoError(t, json.Unmarshal(body, &topic))
	topic["status"] = "retired"
	retired, _ := json.Marshal(topic)
	status, body, err = call("PUT", a.url+"/fhir/SubscriptionTopic/encounter-start", f.admin, string(retired))
	require.NoError(t, err)
	require.Equal(t, 200, status, string(body))

	changed := time.Now()
	waitUntil(t, time.Second, "B to refuse Subscriptions on the retired topic", func() bool {
		status, _, err := call("POST", b.url+"/fhir/Subscription", f.owner, subscriptionBody(f, "/hook/late"))
		require.NoError(t, err)
		return status == 422
	})
	t.Logf("B followed A's topic change after %s", time.Since(changed))
	f.mustEncounter(b, "after-retire")
	status, body, err = call("GET", b.url+"/fhir/Subscription/"+id+"/$status", f.admin, "")
	require.NoError(t, err)
	require.Equal(t, 200, status, string(body))
	require.Equal(t, int64(0), parseNote(body).Total, "B appended an event for a retired topic")

	status, body, err = call("PUT", a.url+"/admin/clients/app", f.admin, `{"status":"suspended","max_payload":"id-only"}`)
	require.NoError(t, err)
	require.Less(t, status, 300, string(body))
	status, body, err = call("GET", b.url+"/fhir/Subscription/"+id+"/$events", f.owner, "")
	require.NoError(t, err)
	require.Equal(t, 403, status, string(body))
}

// subscriptionBody is an encounter-start Subscription for Patient/p1 at
// path under the receiver.
func subscriptionBody(f *procFixture, path string) string {
	return strings.NewReplacer("ENDPOINT", f.recv.srv.URL+path, "TOPIC", encounterStart, "BACKPORT", backport).Replace(`{
		"resourceType": "Subscription", "status": "requested", "reason": "instances test", "criteria": "TOPIC",
		"_criteria": {"extension": [{"url": "BACKPORTbackport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"}]},
		"channel": {"type": "rest-hook", "endpoint": "ENDPOINT", "payload": "application/fhir+json",
			"_payload": {"extension": [{"url": "BACKPORTbackport-payload-content", "valueCode": "id-only"}]}}}`)
}
