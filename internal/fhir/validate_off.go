//go:build heraldnovalidate

package fhir

// Built only for benchmarks that compare a write with and without R4
// validation (scripts/bench.sh); never in a Herald release.
func init() { validationOff = true }
