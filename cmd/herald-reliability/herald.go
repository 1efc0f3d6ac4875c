package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// instance is one `herald serve` process.
type instance struct {
	name string
	bin  string
	env  []string
	log  io.Writer // the process's stderr is copied here

	mu   sync.Mutex
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:port, empty while down
	done chan struct{}
}

var listening = regexp.MustCompile(`"msg":"herald listening","addr":"([^"]+)"`)

// start runs the process and waits until it listens and answers /readyz.
func (in *instance) start(ctx context.Context) error {
	cmd := exec.Command(in.bin, "serve")
	cmd.Env = append(os.Environ(), in.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	addr := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			fmt.Fprintf(in.log, "[%s] %s\n", in.name, line)
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case a := <-addr:
		url := "http://" + a
		if err := waitReady(ctx, url, 30*time.Second); err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("%s: %w", in.name, err)
		}
		in.mu.Lock()
		in.cmd, in.url, in.done = cmd, url, done
		in.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("%s exited before listening (see the log)", in.name)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%s did not listen within 30 s", in.name)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (in *instance) kill() {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.cmd, in.url = nil, ""
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM and waits (the graceful path), then SIGKILL after 20 s.
func (in *instance) stop() {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.cmd, in.url = nil, ""
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (in *instance) baseURL() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.url
}

func waitReady(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/readyz", nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("not ready in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// restartPostgres restarts the local PostgreSQL cluster the way an operator
// would. It reports false with a reason when this machine cannot.
func restartPostgres() (bool, string) {
	entries, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(entries) == 0 {
		return false, "no local PostgreSQL cluster (/etc/postgresql)"
	}
	version := entries[len(entries)-1].Name()
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart").CombinedOutput()
	if err != nil {
		return false, "pg_ctlcluster restart failed: " + strings.TrimSpace(string(out))
	}
	return true, ""
}
