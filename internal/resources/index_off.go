//go:build heraldnoindex

package resources

// Built only for benchmarks that compare creates with and without search
// index keys (issue 14's "at least 70% of creates/s"); never in a release.
func init() { indexingOff = true }
