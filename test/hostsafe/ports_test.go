package hostsafe

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/cm"
)

// portsAsData are the test files (or folders, ending in /) allowed to
// write a default port as a number: there it is data (a parsed
// configuration, a fake prober's answer, a kernel socket record, text the
// tray shows), never a socket. Paths are from the module root; a moved file
// is listed again under its new path.
var portsAsData = []string{
	"agent/config/",               // the defaults themselves, parsed
	"agent/peer/",                 // encoded kernel socket records
	"agent/cm/cm_test.go",         // the default Port Service ports
	"agent/doctor/doctor_test.go", // fake probers keyed by port
	"agent/daemon/daemon_test.go", // a configuration read back
	"tray/app_test.go",            // the tray's text
	"tray/model_test.go",          // the tray's text
	"tray/screenshot_test.go",     // the tray's text
}

func portsAreData(rel string) bool {
	return slices.ContainsFunc(portsAsData, func(e string) bool {
		return rel == e || strings.HasSuffix(e, "/") && strings.HasPrefix(rel, e)
	})
}

// testFile is one parsed _test.go file of the module.
type testFile struct {
	rel  string // slash-separated, from the module root
	file *ast.File
	fset *token.FileSet
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// testFiles parses every _test.go file of the module (build tags ignored:
// Wine and per-OS tests are read too).
func testFiles(t *testing.T) []testFile {
	t.Helper()
	root := moduleRoot(t)
	var files []testFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == "testdata" || n == "node_modules" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, testFile{rel: filepath.ToSlash(rel), file: f, fset: fset})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found only %d test files under %s", len(files), root)
	}
	return files
}

// defaultPorts are the ports a developer's own agent listens on.
func defaultPorts() map[int]bool {
	m := map[int]bool{}
	for _, p := range api.DefaultPorts() {
		m[p] = true
	}
	for _, p := range cm.DefaultPorts {
		m[p] = true
	}
	return m
}

// TestNoDefaultPortLiterals: no test writes a default port as a number or in
// a string (a URL, a configuration), outside the files where it is data.
func TestNoDefaultPortLiterals(t *testing.T) {
	ports := defaultPorts()
	digits := regexp.MustCompile(`\d+`)
	for _, f := range testFiles(t) {
		if f.rel == "test/hostsafe/ports_test.go" || portsAreData(f.rel) {
			continue
		}
		ast.Inspect(f.file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok {
				return true
			}
			var found []string
			switch lit.Kind {
			case token.INT:
				if v, err := strconv.ParseInt(lit.Value, 0, 64); err == nil && ports[int(v)] {
					found = append(found, lit.Value)
				}
			case token.STRING:
				for _, d := range digits.FindAllString(lit.Value, -1) {
					if v, err := strconv.Atoi(d); err == nil && ports[v] {
						found = append(found, d)
					}
				}
			}
			if len(found) > 0 {
				t.Errorf("%s: default port %s: a test uses private ports (pcsctest.FreePorts, port 0); if the number is only data, list the file in portsAsData", f.fset.Position(lit.Pos()), strings.Join(found, ", "))
			}
			return true
		})
	}
}

// TestServersGetPorts: every test that starts the loopback API or the
// Credential Management endpoint with an options literal names its ports;
// without them the server takes the default ones.
func TestServersGetPorts(t *testing.T) {
	checked := 0
	for _, f := range testFiles(t) {
		// The package's name for agent/api and agent/cm in this file: the
		// import's name, or none inside the package itself.
		names := map[string]bool{}
		for _, imp := range f.file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasSuffix(path, "/agent/api") || strings.HasSuffix(path, "/agent/cm") {
				name := filepath.Base(path)
				if imp.Name != nil {
					name = imp.Name.Name
				}
				names[name] = true
			}
		}
		inPackage := (strings.HasPrefix(f.rel, "agent/api/") || strings.HasPrefix(f.rel, "agent/cm/")) && strings.Count(f.rel, "/") == 2
		// A server whose value is dropped (a test of New's validation)
		// never listens.
		dropped := map[ast.Expr]bool{}
		ast.Inspect(f.file, func(n ast.Node) bool {
			if as, ok := n.(*ast.AssignStmt); ok && len(as.Rhs) == 1 {
				if id, ok := as.Lhs[0].(*ast.Ident); ok && id.Name == "_" {
					dropped[as.Rhs[0]] = true
				}
			}
			return true
		})
		ast.Inspect(f.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 4 || dropped[call] {
				return true
			}
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				x, ok := fn.X.(*ast.Ident)
				if !ok || fn.Sel.Name != "New" || !names[x.Name] {
					return true
				}
			case *ast.Ident:
				if fn.Name != "New" || !inPackage {
					return true
				}
			default:
				return true
			}
			opts, ok := call.Args[3].(*ast.CompositeLit)
			if !ok {
				return true // built elsewhere (a helper that sets the ports)
			}
			checked++
			for _, e := range opts.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Ports" {
						return true
					}
				}
			}
			t.Errorf("%s: server started without Options.Ports: it would take the default ports (use Ports: []int{0} or pcsctest.FreePorts)", f.fset.Position(call.Pos()))
			return true
		})
	}
	if checked < 10 {
		t.Errorf("checked only %d server options literals: the check no longer finds them", checked)
	}
}

// agentConfig matches a configuration a test may give a running agent or
// doctor: one that sets the listen port.
var agentConfig = regexp.MustCompile(`"listen"\s*:\s*\{[^}]*"port"\s*:`)

// TestAgentConfigsGetCMPorts: a configuration a test gives `cardagent run`
// or doctor (one that sets the listen port) also names private Credential
// Management ports or turns the endpoint off; otherwise the agent listens
// on, and doctor probes, the NHS Port Service ports.
func TestAgentConfigsGetCMPorts(t *testing.T) {
	for _, f := range testFiles(t) {
		if strings.HasPrefix(f.rel, "agent/config/") {
			continue // parsing only
		}
		ast.Inspect(f.file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || !agentConfig.MatchString(lit.Value) {
				return true
			}
			if !strings.Contains(lit.Value, `"credential_management"`) {
				t.Errorf("%s: agent configuration without credential_management (private ports, or enabled false): the agent would listen on, and doctor probe, the NHS Port Service ports", f.fset.Position(lit.Pos()))
			}
			return true
		})
	}
}
