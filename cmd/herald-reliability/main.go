// Command herald-reliability runs Herald under load and faults and proves,
// from the subscribers' records and the store, that nothing was lost.
//
//	herald-reliability -duration 60s
//
// It creates a database of its own on the PostgreSQL at -database-url, starts
// two `herald serve` processes on it and five receivers on loopback (steady,
// flapping, answering 5xx, hanging past the channel timeout, closing the
// connection mid-response), creates Subscriptions spread over them, and
// writes Encounters through both instances while it
//
//   - SIGKILLs instance A and starts it again,
//   - holds a Subscription's delivery row locked (SELECT … FOR UPDATE) for
//     5 s, longer than the instances' 2 s lock timeout: the writes that
//     wait for it must answer 503 and store nothing,
//   - restarts PostgreSQL (pg_ctlcluster … restart; -pg-restart=false
//     skips it on a shared cluster),
//   - terminates every PostgreSQL backend serving Herald
//     (pg_terminate_backend: the backend dies as under kill -9 of it,
//     the postmaster and other databases are untouched),
//   - SIGKILLs instance B and starts it again.
//
// Then it heals the receivers, waits for delivery to drain and checks:
// every committed write produced exactly one event for every Subscription
// it matches; every event reached its subscriber, in order, with no gap;
// a notification came again only if it had not been acknowledged (or a
// crash lost the acknowledgement); the service answered again within
// seconds of each fault; no write answered with an error while waiting
// for the held lock was stored. It prints a table and exits 1 on any violation.
// Everything runs on loopback; the database is dropped at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-reliability:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type options struct {
	databaseURL   string
	herald        string
	duration      time.Duration
	writers       int
	rate          int
	subscriptions int
	pgRestart     bool
	logFile       string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("herald-reliability", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.databaseURL, "database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server to use (a database herald_rel_<pid> is created there and dropped at the end)")
	fs.StringVar(&o.herald, "herald", "", "herald binary (default: go build ./cmd/herald)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the publishers write while faults are injected")
	fs.IntVar(&o.writers, "writers", 4, "concurrent publishers")
	fs.IntVar(&o.rate, "rate", 100, "writes per second in all")
	fs.IntVar(&o.subscriptions, "subscriptions", 20, "Subscriptions, spread over the receivers (each write matches two)")
	fs.BoolVar(&o.pgRestart, "pg-restart", true, "restart PostgreSQL mid-run (needs pg_ctlcluster and the right to use it)")
	fs.StringVar(&o.logFile, "log", "", "write the herald processes' logs here (default: a temporary file, printed on failure)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.duration < 20*time.Second {
		return o, fmt.Errorf("-duration must be at least 20s to fit the fault schedule")
	}
	if o.writers < 1 || o.rate < 1 || o.subscriptions < 2 {
		return o, fmt.Errorf("-writers, -rate and -subscriptions must be positive (-subscriptions at least 2)")
	}
	return o, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
