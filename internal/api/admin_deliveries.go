package api

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/webhook"
)

// The operators' view of delivery: Subscriptions with their queue lag, the
// attempt log, and the two actions (retry now, reactivate). Documented in
// api/openapi.yaml.

const (
	defaultAdminPage = 100
	maxAdminPage     = 1000
)

// deliveryJSON is a Subscription as GET /admin/subscriptions shows it.
type deliveryJSON struct {
	ID           string `json:"id"`
	Owner        string `json:"owner"`
	OwnerContext string `json:"owner_context"`
	Topic        string `json:"topic"`
	Status       string `json:"status"`
	Error        string `json:"error"`
	Endpoint     string `json:"endpoint"`
	// The queue lag.
	LastEventNumber      int64        `json:"last_event_number"`
	DeliveredThrough     int64        `json:"delivered_through"`
	EventsWaiting        int64        `json:"events_waiting"`
	OldestUndeliveredAt  *time.Time   `json:"oldest_undelivered_at"`
	OldestUndeliveredAge *float64     `json:"oldest_undelivered_age_seconds"`
	LastSuccessAt        *time.Time   `json:"last_success_at"`
	FailureCount         int          `json:"failure_count"`
	DueAt                *time.Time   `json:"due_at"`
	LastError            *attemptJSON `json:"last_error"`
}

// attemptJSON is one delivery attempt.
type attemptJSON struct {
	Seq           int64     `json:"seq"`
	At            time.Time `json:"at"`
	Instance      string    `json:"instance"`
	Channel       string    `json:"channel"`
	Kind          string    `json:"kind"`
	FirstEvent    int64     `json:"first_event"`
	LastEvent     int64     `json:"last_event"`
	Outcome       string    `json:"outcome"`
	Class         string    `json:"class"`
	StatusCode    int       `json:"status_code"`
	LatencyMS     float64   `json:"latency_ms"`
	ResponseBytes int64     `json:"response_bytes"`
	ResponseBody  string    `json:"response_body"`
}

func toAttemptJSON(a store.Attempt) attemptJSON {
	return attemptJSON{Seq: a.Seq, At: a.At.UTC(), Instance: a.Instance, Channel: a.Channel, Kind: a.Kind,
		FirstEvent: a.FirstEvent, LastEvent: a.LastEvent, Outcome: a.Outcome, Class: a.Class, StatusCode: a.StatusCode,
		LatencyMS: float64(a.Latency.Microseconds()) / 1000, ResponseBytes: a.ResponseBytes, ResponseBody: a.ResponseBody}
}

func toDeliveryJSON(o store.DeliveryOverview, now time.Time) deliveryJSON {
	st := o.State
	d := deliveryJSON{ID: st.ID, Owner: st.Owner, OwnerContext: st.Context, Topic: st.Topic, Status: st.Status, Error: st.Error,
		Endpoint: st.Endpoint, LastEventNumber: o.LastEventNumber, DeliveredThrough: o.DeliveredThrough,
		EventsWaiting: o.LastEventNumber - o.DeliveredThrough, FailureCount: o.FailureCount,
		OldestUndeliveredAt: timeOrNil(o.OldestUndelivered), LastSuccessAt: timeOrNil(o.LastSentAt), DueAt: timeOrNil(o.DueAt)}
	if !o.OldestUndelivered.IsZero() {
		age := max(now.Sub(o.OldestUndelivered), 0).Seconds()
		d.OldestUndeliveredAge = &age
	}
	if o.LastFailure != nil {
		a := toAttemptJSON(*o.LastFailure)
		d.LastError = &a
	}
	return d
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// listDeliveries serves GET /admin/subscriptions.
func (s *Server) listDeliveries(c *gin.Context) {
	q := c.Request.URL.Query()
	f := store.SubscriptionFilter{Owner: q.Get("client"), Topic: q.Get("topic"), Endpoint: q.Get("endpoint")}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			if err := admin.OneOf("status", st, admin.SubscriptionStatuses); err != nil {
				writeError(c, fhir.Errorf(fhir.KindInvalid, "%s", err.Error()))
				return
			}
			f.Status = append(f.Status, st)
		}
	}
	after := q.Get("after")
	if after != "" && !fhir.ValidID(after) {
		writeError(c, fhir.Errorf(fhir.KindInvalid, "after must be a Subscription id"))
		return
	}
	limit, err := auditParam(c, "limit", defaultAdminPage, maxAdminPage)
	if err != nil {
		writeError(c, err)
		return
	}
	os, err := s.opts.Operations.Store.DeliveryOverviews(c.Request.Context(), f, after, int(limit))
	if err != nil {
		writeError(c, err)
		return
	}
	now := time.Now()
	c.JSON(http.StatusOK, mapJSON(os, func(o store.DeliveryOverview) deliveryJSON { return toDeliveryJSON(o, now) }))
}

// subscriptionIDParam is a valid {id}, or 404.
func subscriptionIDParam(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !fhir.ValidID(id) {
		writeError(c, fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", clipText(id)))
		return "", false
	}
	return id, true
}

// listAttempts serves GET /admin/subscriptions/{id}/attempts: newest first.
func (s *Server) listAttempts(c *gin.Context) {
	id, ok := subscriptionIDParam(c)
	if !ok {
		return
	}
	q, err := attemptQuery(c, id)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	// Attempts outlive a deleted Subscription; an id never put is unknown.
	if _, err := s.opts.Operations.Store.SubscriptionOwner(ctx, id); err != nil {
		writeError(c, admin.NotFound(err, fmt.Sprintf("Subscription/%s is not known", id)))
		return
	}
	as, err := s.opts.Operations.Store.Attempts(ctx, q)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, mapJSON(as, toAttemptJSON))
}

// attemptQuery reads outcome, class, before and limit.
func attemptQuery(c *gin.Context, id string) (store.AttemptQuery, error) {
	q := store.AttemptQuery{SubscriptionID: id, Outcome: c.Query("outcome"), Class: c.Query("class")}
	if q.Outcome != "" {
		if err := admin.OneOf("outcome", q.Outcome, []string{store.AttemptSuccess, store.AttemptFailure}); err != nil {
			return q, fhir.Errorf(fhir.KindInvalid, "%s", err.Error())
		}
	}
	if q.Class != "" && !slices.Contains(webhook.Classes, webhook.Class(q.Class)) {
		names := make([]string, len(webhook.Classes))
		for i, cl := range webhook.Classes {
			names[i] = string(cl)
		}
		return q, fhir.Errorf(fhir.KindInvalid, "class: %q is not one of %s", clipText(q.Class), strings.Join(names, ", "))
	}
	before, err := auditParam(c, "before", 0, math.MaxInt64)
	if err != nil {
		return q, err
	}
	limit, err := auditParam(c, "limit", defaultAdminPage, maxAdminPage)
	q.BeforeSeq, q.Limit = before, int(limit)
	return q, err
}

// retryDelivery serves POST /admin/subscriptions/{id}/retry.
func (s *Server) retryDelivery(c *gin.Context) {
	id, ok := subscriptionIDParam(c)
	if !ok {
		return
	}
	if err := s.opts.Operations.Retry(c.Request.Context(), id); err != nil {
		writeError(c, err)
		return
	}
	s.writeDelivery(c, id)
}

// reactivate serves POST /admin/subscriptions/{id}/reactivate.
func (s *Server) reactivate(c *gin.Context) {
	id, ok := subscriptionIDParam(c)
	if !ok {
		return
	}
	if _, err := s.opts.Operations.Reactivate(c.Request.Context(), id); err != nil {
		writeError(c, err)
		return
	}
	s.writeDelivery(c, id)
}

// writeDelivery answers an action with the Subscription's row as it is now.
func (s *Server) writeDelivery(c *gin.Context, id string) {
	os, err := s.opts.Operations.Store.DeliveryOverviews(c.Request.Context(), store.SubscriptionFilter{IDs: []string{id}}, "", 1)
	if err == nil && len(os) == 0 {
		err = fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", id) // deleted meanwhile
	}
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toDeliveryJSON(os[0], time.Now()))
}
