package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAttackBundleBuffersStayPerRequest: concurrent searches by tokens of
// different patients (some clients hanging up before reading) each get a
// whole Bundle of their own patient's resources only: the reused render
// buffer carries no bytes from one response into another.
func TestAttackBundleBuffersStayPerRequest(t *testing.T) {
	h := setup(t, stores[0].open(t))
	all := h.token(allScopes)
	pad := strings.Repeat("x", 3000)
	for _, p := range []string{"pa", "pb", "pc", "pd"} {
		for i := range 12 {
			body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":%q},"subject":{"reference":"Patient/%s"}}`, p+fmt.Sprint(i)+pad[:i*200], p)
			r := h.request("POST", "/fhir/Observation", all, body)
			require.Equal(t, 201, r.status, string(r.body))
		}
	}
	toks := map[string]string{}
	for _, p := range []string{"pa", "pb", "pc", "pd"} {
		toks[p] = h.token("patient/Observation.rs", forPatient(p))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := []string{"pa", "pb", "pc", "pd"}[g%4]
			for i := range 40 {
				path := fmt.Sprintf("/fhir/Observation?_count=%d", 1+(i+g)%13)
				if g%5 == 4 && i%2 == 0 {
					// hang up mid-response
					addr := strings.TrimPrefix(h.srv.URL, "http://")
					c, err := net.Dial("tcp", addr)
					if err == nil {
						fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", path, toks[p])
						buf := make([]byte, 100)
						_, _ = c.Read(buf)
						c.Close()
					}
					continue
				}
				req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+toks[p])
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var m struct {
					Entry []struct {
						Resource struct {
							Subject struct{ Reference string }
						}
					}
				}
				if err := json.Unmarshal(b, &m); err != nil {
					errs <- fmt.Errorf("%s: %v: %.200s", path, err, b)
					return
				}
				for _, e := range m.Entry {
					if e.Resource.Subject.Reference != "Patient/"+p {
						errs <- fmt.Errorf("%s as %s: got %s", path, p, e.Resource.Subject.Reference)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
