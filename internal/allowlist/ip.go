package allowlist

import "net/netip"

// IsPrivateIP reports whether a is anything other than a public, globally
// routed unicast address: the dial-time check refuses such addresses unless
// the matching entry allows private networks. It fails closed: the invalid
// (zero) Addr is private.
//
// Private are, for IPv4: 0.0.0.0/8 (this network, including 0.0.0.0),
// 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16 (link-local, cloud metadata),
// 172.16/12, 192.0.0/24 (IETF protocol assignments), 192.0.2/24,
// 198.51.100/24 and 203.0.113/24 (documentation), 192.88.99/24 (6to4 relay),
// 192.168/16, 198.18/15 (benchmarking), 224/4 (multicast) and 240/4
// (reserved, including 255.255.255.255).
//
// For IPv6: everything outside 2000::/3 (so ::, ::1, IPv4-compatible ::/96,
// 100::/64 discard, fc00::/7 ULA, fe80::/10 link-local, fec0::/10, ff00::/8
// multicast and unallocated space) except the NAT64 prefix 64:ff9b::/96;
// inside 2000::/3: 2001::/23 (IETF protocol assignments, including Teredo
// 2001::/32), 2001:db8::/32 and 3fff::/20 (documentation). Addresses that
// embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4
// 2002::/16) are classified by that IPv4 address. Zones are ignored.
func IsPrivateIP(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return inAny(a, privateV4)
	}
	if nat64.Contains(a) {
		b := a.As16()
		return IsPrivateIP(netip.AddrFrom4([4]byte(b[12:16])))
	}
	if sixToFour.Contains(a) {
		b := a.As16()
		return IsPrivateIP(netip.AddrFrom4([4]byte(b[2:6])))
	}
	if !globalUnicast6.Contains(a) {
		return true
	}
	return inAny(a, privateV6)
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var (
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	globalUnicast6 = netip.MustParsePrefix("2000::/3")

	privateV4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("192.88.99.0/24"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"),
	}
	privateV6 = []netip.Prefix{
		netip.MustParsePrefix("2001::/23"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("3fff::/20"),
	}
)
