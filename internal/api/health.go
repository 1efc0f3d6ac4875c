package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// healthz answers while the process is up.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 only when the store is reachable and migrated and the
// server is not draining for a shutdown.
func (s *Server) readyz(c *gin.Context) {
	if s.draining.Load() {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.opts.Ready.Ping(ctx); err != nil {
		_ = c.Error(err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// metrics serves the Prometheus metrics. They hold counts and timings only,
// no identifiers, so like the health checks they need no token; keep the
// port off the public network or scrape through a proxy that adds auth.
func (s *Server) metrics(c *gin.Context) {
	if s.opts.Metrics == nil {
		c.Status(http.StatusNotFound)
		return
	}
	s.opts.Metrics.ServeHTTP(c.Writer, c.Request)
}
