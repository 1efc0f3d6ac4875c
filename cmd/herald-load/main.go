// Command herald-load is Herald's load generator: it drives a running
// server over loopback with concurrent FHIR creates and reads and prints
// throughput and latency percentiles. It measures; it never asserts timing.
//
//	herald-load -secret "$HERALD_AUTH_HS256_SECRET" -c 32 -duration 10s
//
// Each phase runs a warm-up (not recorded) and then a measured window, then
// stops by itself. Phase create POSTs small Patient resources with varied
// names and remembers their ids; phase read GETs random ids among them
// (seeding some first when no create phase ran); phase transaction POSTs
// transaction Bundles of about 30 KB, a Patient and 24 Observations each
// (see transaction.go), and also reports resources/s. Every request's latency is
// kept; non-2xx answers and transport failures are errors, and the exit
// status is 1 when a phase's error rate exceeds -max-error-rate.
//
// Phases delivery and fanout measure rest-hook delivery end to end, with a
// subscriber of herald-load's own (see delivery.go); they need -secret.
//
// Output per phase is a table and one machine-readable line:
//
//	BENCH phase=create c=32 requests=… errors=… rps=… p50_ms=… p90_ms=… p99_ms=… max_ms=…
//	BENCH phase=transaction c=32 … resources_per_request=31 resources_per_s=…
//	BENCH phase=delivery subs=100 fan=1 rate=200 … p50_ms=… p99_ms=… notifications_per_s=… events_per_s=…
//
// (with tag=<tag> at the end under -bench-tag).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/herald-fhir/herald/internal/auth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-load:", err)
	}
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	base         *url.URL
	token        string
	concurrency  int
	duration     time.Duration
	warmup       time.Duration
	phases       []string
	seed         int
	searchSeed   int
	bulkSeedDB   string // with searchSeed: seed by COPY into this database
	searchOnly   string // comma-separated query names; empty: all of them
	timeout      time.Duration
	readyTimeout time.Duration
	maxErrorRate float64
	cpu          []cpuTarget
	delivery     *deliveryOptions
	// tag is appended to every BENCH line as tag=<tag>, to tell runs apart
	// (scripts/bench.sh tags its delivery sweep's runs "sweep").
	tag string
	// printRunSeconds: print the run's length and exit (for profilers).
	printRunSeconds bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("herald-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "http://127.0.0.1:8080/fhir", "FHIR base URL of the server (loopback only)")
	token := fs.String("token", getenv("HERALD_LOAD_TOKEN"), "bearer token ($HERALD_LOAD_TOKEN)")
	secret := fs.String("secret", getenv("HERALD_LOAD_SECRET"), "HS256 secret to mint a system/*.cruds token with ($HERALD_LOAD_SECRET); ignored when -token is set")
	c := fs.Int("c", 32, "concurrent clients")
	duration := fs.Duration("duration", 10*time.Second, "measured time per phase")
	warmup := fs.Duration("warmup", 2*time.Second, "unrecorded warm-up per phase")
	phases := fs.String("phases", "create,read", "comma-separated phases to run, in order: create, read, transaction (30 KB Bundles of a Patient and Observations), search (issue 14 queries over Patients' records), delivery (end-to-end notification latency), fanout (notifications/s to many Subscriptions)")
	seed := fs.Int("seed", 1000, "Patients to create before a read phase when no create phase ran")
	searchSeed := fs.Int("search-seed", 400, "records (a Patient, 3 Encounters and 96 Observations each) to write before a search phase; 0: search the Patients the server holds")
	searchOnly := fs.String("search-queries", "", "search phase: comma-separated names of the queries to run (encounter-status, code-date-sorted, include, total-accurate, revinclude); default all, in equal shares")
	bulkSeedDB := fs.String("bulk-seed", "", "PostgreSQL `URL` of the server's database: write -search-seed's records into it directly (COPY, through the server's own stamping and search-key code) instead of POSTing transaction Bundles; the server must use this database and -url as its base")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	readyTimeout := fs.Duration("ready-timeout", 0, "first wait up to this long for GET /readyz to answer 200 (0: don't wait)")
	maxErr := fs.Float64("max-error-rate", 0.01, "exit 1 when a phase's error fraction exceeds this")
	printRun := fs.Bool("print-run-seconds", false, "print how many whole seconds the phases will take, and exit (for scripts that profile the server meanwhile)")
	tag := fs.String("bench-tag", "", "add tag=`TAG` to every BENCH line (letters, digits, '-', '_', '.')")
	cpu := fs.String("cpu", "", "report CPU use per phase of processes: label=pid:N, label=comm:NAME or label=cmdline:WORD, comma-separated (Linux /proc)")
	dl := deliveryFlags(fs)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := options{
		token: *token, concurrency: *c, duration: *duration, warmup: *warmup,
		seed: *seed, searchSeed: *searchSeed, bulkSeedDB: *bulkSeedDB, searchOnly: *searchOnly, timeout: *timeout, readyTimeout: *readyTimeout, maxErrorRate: *maxErr,
		delivery: dl, tag: *tag,
	}
	dl.secret = *secret
	u, err := url.Parse(strings.TrimRight(*rawURL, "/"))
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return o, fmt.Errorf("-url %q: want an absolute http(s) URL", *rawURL)
	}
	if !loopback(u.Hostname()) {
		return o, fmt.Errorf("-url %q: herald-load only drives loopback servers (127.0.0.0/8, ::1, localhost)", *rawURL)
	}
	o.base = u
	switch {
	case o.concurrency < 1:
		return o, errors.New("-c must be at least 1")
	case o.duration <= 0:
		return o, errors.New("-duration must be positive")
	case o.warmup < 0:
		return o, errors.New("-warmup must not be negative")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "create", "read", "transaction", "search", "delivery", "fanout":
			o.phases = append(o.phases, p)
		case "":
		default:
			return o, fmt.Errorf("-phases: unknown phase %q (want create, read, transaction, search, delivery, fanout)", p)
		}
	}
	if len(o.phases) == 0 {
		return o, errors.New("-phases: no phase to run")
	}
	if strings.IndexFunc(o.tag, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r))
	}) >= 0 {
		return o, fmt.Errorf("-bench-tag %q: want letters, digits, '-', '_' and '.' only", o.tag)
	}
	if o.deliveryPhases() {
		if err := dl.validate(); err != nil && !*printRun {
			return o, err
		}
	}
	if o.cpu, err = parseCPUTargets(*cpu); err != nil {
		return o, fmt.Errorf("-cpu: %w", err)
	}
	if o.printRunSeconds = *printRun; o.printRunSeconds {
		return o, nil
	}
	if o.token == "" {
		if *secret == "" {
			return o, errors.New("a token is needed: pass -token, or -secret to mint one")
		}
		// Long enough for every phase, short enough not to matter if it leaks;
		// a search phase's seeding (a million resources took 11 minutes on a
		// busy machine, and the token expired) gets 400 ms per record more.
		ttl := time.Duration(len(o.phases))*(o.warmup+o.duration+o.timeout) + 10*time.Minute +
			time.Duration(o.searchSeed)*seedTimePerRecord
		o.token, err = auth.MintHS256([]byte(*secret), auth.MintClaims{ClientID: "herald-load", Scope: "system/*.cruds", TTL: ttl})
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// deliveryPhases reports whether a delivery or fanout phase is to run.
func (o options) deliveryPhases() bool {
	return slices.Contains(o.phases, "delivery") || slices.Contains(o.phases, "fanout")
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return 2, err
	}
	if o.printRunSeconds {
		d := time.Duration(len(o.phases)) * (o.warmup + o.duration)
		fmt.Fprintln(stdout, int((d+time.Second-1)/time.Second))
		return 0, nil
	}
	// The generator shares the machine with the server and PostgreSQL;
	// collecting garbage less often keeps its own CPU share small.
	debug.SetGCPercent(400)

	client := newClient(o.concurrency, o.timeout)
	defer client.CloseIdleConnections()
	if o.readyTimeout > 0 {
		if err := waitReady(ctx, client, o.base, o.readyTimeout); err != nil {
			return 1, err
		}
	}
	g := &generator{client: client, base: o.base.String(), auth: "Bearer " + o.token}
	fmt.Fprintf(stdout, "herald-load: %s, %d clients, warm-up %s + %s per phase, phases %s\n",
		o.base, o.concurrency, o.warmup, o.duration, strings.Join(o.phases, ","))

	var results []*result
	var delivered []*deliveryResult
	var db *deliveryBench
	defer func() {
		if db != nil {
			db.close()
		}
	}()
	created := false
	for _, phase := range o.phases {
		if ctx.Err() != nil {
			return 1, ctx.Err()
		}
		var w workFunc
		switch phase {
		case "delivery", "fanout":
			if db == nil {
				if db, err = newDeliveryBench(ctx, o, stdout); err != nil {
					return 1, fmt.Errorf("%s: %w", phase, err)
				}
			}
			r, err := db.run(ctx, phase)
			if err != nil {
				return 1, err
			}
			r.print(stdout)
			delivered = append(delivered, r)
			continue
		case "create":
			w = g.create
			created = true
		case "transaction":
			w = g.transaction
		case "search":
			ids, err := g.searchPatients(ctx, o, stdout)
			if err != nil {
				return 1, fmt.Errorf("search: %w", err)
			}
			queries, err := selectQueries(o.searchOnly)
			if err != nil {
				return 1, fmt.Errorf("-search-queries: %w", err)
			}
			if err := g.checkSearches(ctx, queries, ids[0]); err != nil {
				return 1, fmt.Errorf("search: %w", err)
			}
			w = g.searcher(queries, ids)
		case "read":
			if !created && len(g.ids.list()) == 0 {
				fmt.Fprintf(stdout, "seeding %d Patients for the read phase…\n", o.seed)
				if err := g.seed(ctx, o.concurrency, o.seed); err != nil {
					return 1, fmt.Errorf("seed: %w", err)
				}
			}
			ids := g.ids.list()
			if len(ids) == 0 {
				return 1, errors.New("read: no Patient was created, nothing to read")
			}
			w = g.reader(ids)
		}
		r := runPhase(ctx, phase, o.concurrency, o.warmup, o.duration, w, o.cpu)
		if phase == "transaction" {
			r.resourcesPerRequest = resourcesPerTransaction
		}
		if ctx.Err() != nil {
			return 1, ctx.Err() // interrupted: the figures would be meaningless
		}
		r.print(stdout)
		results = append(results, r)
	}
	fmt.Fprintln(stdout)
	code := 0
	for _, r := range results {
		fmt.Fprintln(stdout, withTag(r.benchLine(o.concurrency), o.tag))
		if r.errorRate() > o.maxErrorRate {
			fmt.Fprintf(stderr, "herald-load: phase %s: error rate %.2f%% exceeds %.2f%%\n", r.phase, 100*r.errorRate(), 100*o.maxErrorRate)
			code = 1
		}
	}
	for _, r := range delivered {
		fmt.Fprintln(stdout, withTag(r.benchLine(), o.tag))
		if r.errorRate() > o.maxErrorRate {
			fmt.Fprintf(stderr, "herald-load: phase %s: write error rate %.2f%% exceeds %.2f%%\n", r.phase, 100*r.errorRate(), 100*o.maxErrorRate)
			code = 1
		}
	}
	if ctx.Err() != nil {
		return 1, ctx.Err()
	}
	return code, nil
}

// withTag appends tag=<tag> to a BENCH line when there is a tag.
func withTag(line, tag string) string {
	if tag == "" {
		return line
	}
	return line + " tag=" + tag
}

// newClient is an HTTP/1.1 keep-alive client that holds one idle connection
// per worker, so no request pays for a new TCP connection after warm-up.
func newClient(concurrency int, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // loopback: never through a proxy
		DialContext:           dialer.DialContext,
		MaxIdleConns:          2 * concurrency,
		MaxIdleConnsPerHost:   2 * concurrency,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: timeout,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect would mean the URL is wrong; report it rather than follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// waitReady polls GET <origin>/readyz until it answers 200 or limit passes.
func waitReady(ctx context.Context, client *http.Client, base *url.URL, limit time.Duration) error {
	ready := (&url.URL{Scheme: base.Scheme, Host: base.Host, Path: "/readyz"}).String()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ready, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", ready, limit, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
