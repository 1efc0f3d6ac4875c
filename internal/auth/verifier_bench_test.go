package auth

import (
	"context"
	"testing"
	"time"
)

func BenchmarkVerifyHS256(b *testing.B) {
	tok, err := MintHS256(testSecret, MintClaims{
		ClientID: "client-1",
		Scope:    "system/Subscription.cruds system/Encounter.rs patient/Observation.rs?category=laboratory",
		TTL:      time.Hour,
		Now:      testNow,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cold", -1}, {"cached", 0}} {
		v := newHSVerifier(b, VerifierConfig{CacheSize: bc.cache})
		ctx := context.Background()
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
