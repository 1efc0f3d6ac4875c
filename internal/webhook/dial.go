package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/herald-fhir/herald/internal/allowlist"
)

// dialer connects to a host by resolving it itself and dialing the resolved
// IPs literally, so the addresses it checks are the ones it connects to.
type dialer struct {
	allowPrivate bool
	resolve      func(ctx context.Context, host string) ([]netip.Addr, error)
	// dial connects to a literal "ip:port": a net.Dialer's DialContext,
	// replaced in tests.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func newDialer(allowPrivate bool, resolve func(context.Context, string) ([]netip.Addr, error)) *dialer {
	nd := &net.Dialer{Timeout: MaxTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		nd.Control = controlPublic
	}
	return &dialer{allowPrivate: allowPrivate, resolve: resolve, dial: nd.DialContext}
}

func defaultResolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// DialContext is the http.Transport dial function. Unless private networks
// are allowed it refuses the whole host when any resolved address is not
// public: which one a retry or a happy-eyeballs race would pick is not ours
// to guess, so fail closed.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	addrs, err := d.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	if !d.allowPrivate {
		for _, a := range addrs {
			if blocked(a) {
				return nil, blockedError(a)
			}
		}
	}
	var first error
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		c, err := d.dial(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		first = &resolveError{errors.New("no usable address")}
	}
	return nil, first
}

// lookup returns host's addresses, unmapped and without duplicates. An IP
// literal is its own (only) address and is not resolved.
func (d *dialer) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	found, err := d.resolve(ctx, host)
	if err != nil {
		return nil, &resolveError{err}
	}
	addrs := make([]netip.Addr, 0, len(found))
	for _, a := range found {
		// An IPv4-mapped address is dialed (and so checked) as plain IPv4.
		if a = a.Unmap(); !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, &resolveError{errors.New("no addresses")}
	}
	return addrs, nil
}

// blocked reports whether a may not be dialed without allow_private_network.
// The invalid Addr is blocked.
func blocked(a netip.Addr) bool {
	return allowlist.IsPrivateIP(a.Unmap())
}

func blockedError(a netip.Addr) error {
	return fmt.Errorf("address %s is not public: %w", a, ErrBlocked)
}

// controlPublic runs on the socket just before connect: a second check of
// the address actually dialed, in case anything upstream ever changes.
func controlPublic(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unrecognised socket address: %w", ErrBlocked)
	}
	if blocked(ap.Addr()) {
		return blockedError(ap.Addr())
	}
	return nil
}
