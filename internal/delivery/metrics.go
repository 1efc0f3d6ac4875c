package delivery

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store"
)

// Metrics are the delivery engine's Prometheus metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	events     prometheus.Counter
	eventAge   prometheus.Histogram
	revokes    prometheus.Counter
}

// NewMetrics registers the delivery metrics with reg, and a collector that
// reads the queue from stats at each scrape (subscriptions by status, queue
// lag).
func NewMetrics(reg prometheus.Registerer, stats store.DeliveryQueue) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Notification sends by type (handshake, heartbeat, event-notification) and outcome (success, or the short failure reason of the webhook client, such as timeout or status 503).",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_duration_seconds",
			Help:    "Time from the start of a send to the subscriber's answer (or the failure), by type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"type"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_delivered_total",
			Help: "Events acknowledged by subscribers.",
		}),
		eventAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_event_delivery_latency_seconds",
			Help:    "Time from the write that made an event to the subscriber's acknowledgement of it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		revokes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_revocations_total",
			Help: "Subscriptions switched off because the check before a send failed.",
		}),
	}
	reg.MustRegister(m.deliveries, m.duration, m.events, m.eventAge, m.revokes, &queueCollector{stats: stats})
	return m
}

func (m *Metrics) sent(kind notify.Type, d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "success"
	if err != nil {
		outcome = reason(err)
	}
	m.deliveries.WithLabelValues(string(kind), outcome).Inc()
	if d > 0 {
		m.duration.WithLabelValues(string(kind)).Observe(d.Seconds())
	}
}

func (m *Metrics) delivered(evs []store.Event, at time.Time) {
	if m == nil {
		return
	}
	m.events.Add(float64(len(evs)))
	for _, e := range evs {
		m.eventAge.Observe(at.Sub(e.Timestamp).Seconds())
	}
}

func (m *Metrics) revoked() {
	if m != nil {
		m.revokes.Inc()
	}
}

// queueCollector reads the queue at scrape time.
type queueCollector struct{ stats store.DeliveryQueue }

var (
	subscriptionsDesc = prometheus.NewDesc("herald_subscriptions",
		"Subscriptions by status.", []string{"status"}, nil)
	queueLagDesc = prometheus.NewDesc("herald_delivery_queue_lag_seconds",
		"Age of the oldest event not yet acknowledged by a Subscription that is not off (0: none waiting).", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- subscriptionsDesc
	ch <- queueLagDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.stats.DeliveryStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueLagDesc, errors.New("delivery stats unavailable"))
		return
	}
	for _, s := range []string{"requested", "active", "error", "off"} {
		ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(st.ByStatus[s]), s)
	}
	lag := 0.0
	if !st.OldestUndelivered.IsZero() {
		lag = max(time.Since(st.OldestUndelivered).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queueLagDesc, prometheus.GaugeValue, lag)
}

// NewRegistry returns a registry with the delivery metrics (on q) and the
// Go runtime and process collectors: what GET /metrics serves.
func NewRegistry(q store.DeliveryQueue) (*prometheus.Registry, *Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, NewMetrics(reg, q)
}

// Handler serves reg for GET /metrics. A metric that cannot be collected
// (the queue statistics while the database is away) is left out rather than
// failing the whole answer.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
