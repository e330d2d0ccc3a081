package cli

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayering keeps the command line thin: the agent's wiring lives in
// agent/daemon, so this package neither imports the tray (either side) nor
// builds the card service itself.
func TestLayering(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, "/tray") {
			t.Errorf("agent/cli imports %s", imp)
		}
	}
	fset := token.NewFileSet()
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "agent" && sel.Sel.Name == "CardService" {
					t.Errorf("%s: agent/cli uses agent.CardService directly", fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
}
