package jsonpatch

import (
	"bytes"
	"encoding/json"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// write serialises v: scalars as their exact input text, containers member
// by member in order (their own Raw is stale once the patch changed them).
func write(b *bytes.Buffer, v *strictjson.Value) {
	switch v.Kind {
	case strictjson.Object:
		b.WriteByte('{')
		for i := range v.Members {
			if i > 0 {
				b.WriteByte(',')
			}
			name, _ := json.Marshal(v.Members[i].Name)
			b.Write(name)
			b.WriteByte(':')
			write(b, &v.Members[i].Value)
		}
		b.WriteByte('}')
	case strictjson.Array:
		b.WriteByte('[')
		for i := range v.Items {
			if i > 0 {
				b.WriteByte(',')
			}
			write(b, &v.Items[i])
		}
		b.WriteByte(']')
	default:
		b.Write(v.Raw)
	}
}
