package strictjson_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoOtherJSONReading fails when server code decodes JSON with
// encoding/json, whose case-insensitive field matching and last-wins
// duplicates would let two parts of Herald read one body two ways. Reading
// goes through strictjson; encoding/json may still write.
func TestNoOtherJSONReading(t *testing.T) {
	// Load tools (cmd/herald-load, cmd/herald-reliability) are clients of
	// Herald, not part of it.
	roots := []string{"../../internal", "../../cmd/herald"}
	forbidden := map[string]bool{"Unmarshal": true, "NewDecoder": true}
	var found []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			name := jsonImportName(f)
			if name == "" {
				return nil
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && forbidden[sel.Sel.Name] {
					found = append(found, fset.Position(sel.Pos()).String()+": json."+sel.Sel.Name)
				}
				return true
			})
			return nil
		})
		require.NoError(t, err)
	}
	require.Empty(t, found, "decode JSON with strictjson.Parse or strictjson.Unmarshal instead")
}

func jsonImportName(f *ast.File) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "encoding/json" {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return "json"
		}
	}
	return ""
}
