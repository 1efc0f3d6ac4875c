// Package jsonpatch applies JSON Patch documents (RFC 6902) to JSON, both
// read by internal/strictjson. The result keeps the document's member order
// and the exact text of every value the patch does not change, so a patch
// changes only what it names.
package jsonpatch

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// Error is a patch that cannot be applied; Op is the index of the failing
// operation (-1 when the patch document itself is malformed).
type Error struct {
	Op      int
	Message string
	// TestFailed: a test operation found another value.
	TestFailed bool
	// Malformed: the patch document is not a valid JSON Patch.
	Malformed bool
}

func (e *Error) Error() string {
	if e.Op < 0 {
		return "JSON Patch: " + e.Message
	}
	return fmt.Sprintf("JSON Patch operation %d: %s", e.Op, e.Message)
}

// operation is one parsed operation.
type operation struct {
	op, path, from string
	value          *strictjson.Value
}

// Apply applies patch to doc and returns the patched document.
func Apply(doc, patch []byte) ([]byte, error) {
	ops, err := parse(patch)
	if err != nil {
		return nil, err
	}
	root, err := strictjson.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("jsonpatch: the document: %w", err)
	}
	for i, o := range ops {
		if err := o.apply(root); err != nil {
			if pe, ok := err.(*Error); ok {
				pe.Op = i
				return nil, pe
			}
			return nil, &Error{Op: i, Message: err.Error()}
		}
	}
	var b bytes.Buffer
	write(&b, root)
	return b.Bytes(), nil
}

func parse(patch []byte) ([]operation, error) {
	v, err := strictjson.Parse(patch)
	if err != nil {
		return nil, &Error{Op: -1, Message: err.Error(), Malformed: true}
	}
	if v.Kind != strictjson.Array {
		return nil, &Error{Op: -1, Message: "a patch is an array of operations", Malformed: true}
	}
	ops := make([]operation, len(v.Items))
	for i := range v.Items {
		o, err := parseOperation(&v.Items[i])
		if err != nil {
			return nil, &Error{Op: i, Message: err.Error(), Malformed: true}
		}
		ops[i] = o
	}
	return ops, nil
}

func parseOperation(item *strictjson.Value) (operation, error) {
	var o operation
	if item.Kind != strictjson.Object {
		return o, fmt.Errorf("an operation is an object")
	}
	str := func(name string) (string, bool, error) {
		m := item.Get(name)
		if m == nil {
			return "", false, nil
		}
		if m.Kind != strictjson.String {
			return "", true, fmt.Errorf("%q must be a string", name)
		}
		return m.Str, true, nil
	}
	var hasPath, hasFrom bool
	var err error
	if o.op, _, err = str("op"); err != nil {
		return o, err
	}
	if o.path, hasPath, err = str("path"); err != nil {
		return o, err
	}
	if o.from, hasFrom, err = str("from"); err != nil {
		return o, err
	}
	o.value = item.Get("value")
	switch {
	case !hasPath:
		return o, fmt.Errorf("%q has no path", o.op)
	case (o.op == "add" || o.op == "replace" || o.op == "test") && o.value == nil:
		return o, fmt.Errorf("%q needs a value", o.op)
	case (o.op == "move" || o.op == "copy") && !hasFrom:
		return o, fmt.Errorf("%q needs from", o.op)
	}
	switch o.op {
	case "add", "remove", "replace", "move", "copy", "test":
	default:
		return o, fmt.Errorf("op %q is not add, remove, replace, move, copy or test", o.op)
	}
	return o, nil
}

func (o operation) apply(root *strictjson.Value) error {
	switch o.op {
	case "add":
		return add(root, o.path, clone(*o.value))
	case "remove":
		_, err := remove(root, o.path)
		return err
	case "replace":
		// In place: the member keeps its position.
		v, err := get(root, o.path)
		if err != nil {
			return err
		}
		*v = clone(*o.value)
		return nil
	case "move":
		if o.path != o.from && strings.HasPrefix(o.path, o.from+"/") {
			return fmt.Errorf("cannot move %s into itself", o.from)
		}
		v, err := remove(root, o.from)
		if err != nil {
			return err
		}
		return add(root, o.path, v)
	case "copy":
		v, err := get(root, o.from)
		if err != nil {
			return err
		}
		return add(root, o.path, clone(*v))
	}
	v, err := get(root, o.path)
	if err != nil {
		return err
	}
	if !equal(v, o.value) {
		return &Error{Message: "test failed: " + o.path + " holds another value", TestFailed: true}
	}
	return nil
}
