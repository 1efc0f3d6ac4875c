package r4

import "testing"

// BenchmarkLoadTable: the one-time cost of reading the generated table.
func BenchmarkLoadTable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseTable(tableText); err != nil {
			b.Fatal(err)
		}
	}
}
