package console

import (
	"context"
	"net/http"
	"time"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// The Subscriptions pages call what the JSON admin API's handlers call:
// the store's delivery overviews and attempt log, and
// subscription.Operations' Retry and Reactivate (the send policy decides).

const (
	subscriptionsPage = 200 // rows of the list
	attemptsPage      = 100 // attempts shown, newest first
)

// subscriptionsData is the list page.
type subscriptionsData struct {
	Status, Topic, Client string // the filter
	Statuses              []string
	Topics                []string
	Rows                  []row
	Full                  bool // more rows than shown
}

// row is one Subscription as the console shows it.
type row struct {
	store.DeliveryOverview
	Waiting int64         // events not yet acknowledged
	Lag     time.Duration // age of the oldest of them; 0 when none
}

func newRow(o store.DeliveryOverview, now time.Time) row {
	r := row{DeliveryOverview: o, Waiting: o.LastEventNumber - o.DeliveredThrough}
	if !o.OldestUndelivered.IsZero() {
		r.Lag = max(now.Sub(o.OldestUndelivered), 0).Round(time.Second)
	}
	return r
}

func (c *Console) subscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := subscriptionsData{Status: q.Get("status"), Topic: q.Get("topic"), Client: q.Get("client"), Statuses: admin.SubscriptionStatuses}
	for _, t := range c.opts.Topics.All() {
		d.Topics = append(d.Topics, t.URL)
	}
	f := store.SubscriptionFilter{Owner: d.Client, Topic: d.Topic}
	if d.Status != "" {
		if err := admin.OneOf("status", d.Status, admin.SubscriptionStatuses); err != nil {
			c.failErr(w, r, err)
			return
		}
		f.Status = []string{d.Status}
	}
	os, err := c.opts.Operations.Store.DeliveryOverviews(r.Context(), f, "", subscriptionsPage+1)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if len(os) > subscriptionsPage {
		os, d.Full = os[:subscriptionsPage], true
	}
	now := time.Now()
	for _, o := range os {
		d.Rows = append(d.Rows, newRow(o, now))
	}
	c.render(w, r, http.StatusOK, "subscriptions", page{Title: "Subscriptions", Nav: "subscriptions", Data: d})
}

// subscriptionData is one Subscription's page.
type subscriptionData struct {
	Row      row
	Attempts []store.Attempt
}

func (c *Console) subscription(w http.ResponseWriter, r *http.Request) {
	c.showSubscription(w, r, http.StatusOK, "")
}

func (c *Console) showSubscription(w http.ResponseWriter, r *http.Request, status int, problem string) {
	id := r.PathValue("id")
	if !fhir.ValidID(id) {
		c.fail(w, r, http.StatusNotFound, "No such Subscription.")
		return
	}
	ctx := r.Context()
	os, err := c.opts.Operations.Store.DeliveryOverviews(ctx, store.SubscriptionFilter{IDs: []string{id}}, "", 1)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if len(os) == 0 {
		c.fail(w, r, http.StatusNotFound, "No such Subscription.")
		return
	}
	as, err := c.opts.Operations.Store.Attempts(ctx, store.AttemptQuery{SubscriptionID: id, Limit: attemptsPage})
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := subscriptionData{Row: newRow(os[0], time.Now()), Attempts: as}
	c.render(w, r, status, "subscription", page{Title: "Subscription " + id, Nav: "subscriptions", Done: doneMessage(r), Error: problem, Data: d})
}

func (c *Console) retry(w http.ResponseWriter, r *http.Request) {
	c.act(w, r, "retried", c.opts.Operations.Retry)
}

func (c *Console) reactivate(w http.ResponseWriter, r *http.Request) {
	c.act(w, r, "reactivated", func(ctx context.Context, id string) error {
		_, err := c.opts.Operations.Reactivate(ctx, id)
		return err
	})
}

// act runs an action on the Subscription of the path and shows its page.
func (c *Console) act(w http.ResponseWriter, r *http.Request, done string, action func(context.Context, string) error) {
	id := r.PathValue("id")
	if !fhir.ValidID(id) {
		c.fail(w, r, http.StatusNotFound, "No such Subscription.")
		return
	}
	if err := action(r.Context(), id); err != nil {
		status, msg := c.userError(r, err)
		c.showSubscription(w, r, status, msg)
		return
	}
	http.Redirect(w, r, Prefix+"/subscriptions/"+id+"?done="+done, http.StatusSeeOther)
}
