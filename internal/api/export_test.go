package api

import "context"

// RouteInfo is one registered route, for tests in package api_test.
type RouteInfo struct {
	Method, Path string // Path in gin syntax: :param and *catchall
}

// Routes lists the routes the Server registered, in table order.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, len(s.routes))
	for i, r := range s.routes {
		out[i] = RouteInfo{Method: r.method, Path: r.path}
	}
	return out
}

// HoldSearchSlotsForTest takes n of the search slots (Options.SearchesInFlight)
// until release is called, as n searches in progress would.
func (s *Server) HoldSearchSlotsForTest(n int64) (release func()) {
	if err := s.searches.Acquire(context.Background(), n); err != nil {
		panic(err)
	}
	return func() { s.searches.Release(n) }
}
