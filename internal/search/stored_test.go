package search_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
)

// The reading of a client's resource stays strict: a repeated or
// case-variant member is refused, while the stored-body reading (which
// skips those checks because the body passed them when written) would take
// it. So the two readings are distinct and the client one is NewResource.
func TestClientReadingStaysStrict(t *testing.T) {
	for _, body := range []string{
		`{"resourceType":"Encounter","subject":{"reference":"Patient/p2","Reference":"Patient/p1"}}`,
		`{"resourceType":"Encounter","status":"planned","status":"in-progress"}`,
	} {
		_, err := search.NewResource([]byte(body))
		require.Error(t, err, body)
		c, err := search.ParseQualified("Encounter?status=in-progress")
		require.NoError(t, err)
		_, err = c.MatchJSON([]byte(body))
		require.Error(t, err, body)
		_, err = search.NewStoredResource([]byte(body))
		require.NoError(t, err, "the stored reading does not repeat the write's checks")
	}
	const ok = `{"resourceType":"Encounter","id":"e1","status":"in-progress","subject":{"reference":"Patient/p1"},"period":{"start":"2020-01-01"}}`
	strict, err := search.NewResource([]byte(ok))
	require.NoError(t, err)
	stored, err := search.NewStoredResource([]byte(ok))
	require.NoError(t, err)
	require.Equal(t, strict, stored)
}

// TestLenientReadingOnlyForStoredBodies fails when server code hands
// NewStoredResource(Of) anything but a stored version's Body, or calls
// strictjson.ParseStored(Members) outside search: a client's bytes read that way
// would skip the duplicate and case checks.
func TestLenientReadingOnlyForStoredBodies(t *testing.T) {
	var found []string
	calls := 0
	for _, root := range []string{"../../internal", "../../cmd/herald"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name := ""
				switch fn := call.Fun.(type) {
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				case *ast.Ident:
					name = fn.Name
				}
				switch name {
				case "ParseStored", "ParseStoredMembers":
					if filepath.ToSlash(path) != "../../internal/search/resource.go" {
						found = append(found, fset.Position(call.Pos()).String()+": "+name+" outside search")
					}
				case "NewStoredResource", "NewStoredResourceOf":
					calls++
					if sel, ok := call.Args[0].(*ast.SelectorExpr); !ok || sel.Sel.Name != "Body" {
						found = append(found, fset.Position(call.Pos()).String()+": NewStoredResource of something not a stored version's Body")
					}
				}
				return true
			})
			return nil
		})
		require.NoError(t, err)
	}
	require.Empty(t, found)
	require.NotZero(t, calls, "the walk found the callers")
}
