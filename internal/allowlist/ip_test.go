package allowlist

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsPrivateIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		private bool
	}{
		// IPv4 public
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.216.34", false},
		{"9.255.255.255", false},
		{"11.0.0.0", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"126.255.255.255", false},
		{"128.0.0.0", false},
		{"169.253.255.255", false},
		{"169.255.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"192.0.1.0", false},
		{"192.0.3.0", false},
		{"192.167.255.255", false},
		{"192.169.0.0", false},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"223.255.255.255", false},

		// this network 0.0.0.0/8, unspecified
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"0.255.255.255", true},
		// RFC 1918
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"172.16.0.0", true},
		{"172.31.255.255", true},
		{"192.168.0.0", true},
		{"192.168.255.255", true},
		// CGNAT
		{"100.64.0.0", true},
		{"100.127.255.255", true},
		// loopback
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		// link-local and cloud metadata
		{"169.254.0.1", true},
		{"169.254.169.254", true},
		// IETF protocol assignments, documentation, 6to4 relay, benchmarking
		{"192.0.0.8", true},
		{"192.0.2.1", true},
		{"198.51.100.1", true},
		{"203.0.113.1", true},
		{"192.88.99.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		// multicast, reserved, broadcast
		{"224.0.0.1", true},
		{"239.255.255.255", true},
		{"240.0.0.1", true},
		{"255.255.255.255", true},

		// IPv6 public
		{"2606:4700:4700::1111", false},
		{"2001:4860:4860::8888", false},
		{"2a00:1450:4001::1", false},
		{"2001:200::1", false},
		{"3ffe::1", false},
		// IPv6 special
		{"::", true},
		{"::1", true},
		{"::2", true},
		{"fc00::1", true},
		{"fd12:3456:789a::1", true},
		{"fe80::1", true},
		{"febf:ffff::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"ff05::2", true},
		{"100::1", true},
		{"2001:db8::1", true},
		{"2001::1", true},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true},
		{"2001:10::1", true},
		{"3fff::1", true},
		{"5f00::1", true},
		{"4000::1", true},
		{"64:ff9b:1::1", true},
		{"::a00:1", true},
		// IPv4-mapped
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:0.0.0.0", true},
		{"::ffff:8.8.8.8", false},
		// NAT64 by embedded address
		{"64:ff9b::8.8.8.8", false},
		{"64:ff9b::127.0.0.1", true},
		{"64:ff9b::a9fe:a9fe", true},
		// 6to4 by embedded address
		{"2002:808:808::1", false},
		{"2002:7f00:1::1", true},
		{"2002:a00:1::1", true},
		{"2002:a9fe:a9fe::", true},
		// zones are ignored
		{"fe80::1%eth0", true},
		{"2001:4860:4860::8888%eth0", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.private, IsPrivateIP(netip.MustParseAddr(tt.addr)))
		})
	}
}

func TestIsPrivateIPInvalid(t *testing.T) {
	t.Parallel()
	require.True(t, IsPrivateIP(netip.Addr{}))
}

// TestIsPrivateIPStdlib checks we are at least as strict as the standard
// library's classifications.
func TestIsPrivateIPStdlib(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"0.0.0.0", "127.0.0.1", "10.1.1.1", "172.20.0.1", "192.168.1.1", "169.254.1.1", "224.0.0.251",
		"::", "::1", "fd00::1", "fe80::abcd", "ff01::1", "ff0e::1", "::ffff:192.168.0.1",
	} {
		a := netip.MustParseAddr(s)
		std := a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
			a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified()
		require.True(t, std, s)
		require.True(t, IsPrivateIP(a), s)
	}
}
