package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/installer"
)

// configCmd is `cardagent config show [--json]`: the effective
// configuration (defaults < file < IT policy) and where each value came from.
func configCmd(_ context.Context, env *Env, args []string) error {
	const use = "usage: cardagent config show [--json] [--config FILE]"
	if helpAsked(env, args, use) {
		return nil
	}
	if len(args) == 0 || args[0] != "show" {
		return usageError{use}
	}
	fs := newFlags("config show", env)
	asJSON := fs.Bool("json", false, "print JSON: the configuration, each key's source and the warnings")
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath()+")")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := config.LoadEffective(*cfgPath)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	file := *cfgPath
	if file == "" {
		file = config.DefaultPath()
	}
	layers := []string{"defaults", file + fileState(file), "IT policy " + config.SystemPolicyPath}
	rows := configRows(cfg)
	if *asJSON {
		sources := make(map[string]string, len(rows))
		for _, r := range rows {
			sources[r.key] = r.source
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Schema   int               `json:"schema"`
			Layers   []string          `json:"layers"`
			Config   config.Config     `json:"config"`
			Sources  map[string]string `json:"sources"`
			Origins  []string          `json:"allowed_origins_effective"`
			Warnings []string          `json:"warnings"`
		}{1, layers, cfg, sources, cfg.AllowedOrigins(), nonNil(cfg.Warnings())})
	}
	fmt.Fprintf(env.Stdout, "Layers, later ones win: %s\n\n", strings.Join(layers, " < "))
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.key, r.value, r.source)
	}
	tw.Flush()
	fmt.Fprintf(env.Stdout, "\nAllowed origins now (environment %q): %s\n", cfg.Environment, strings.Join(orNone(cfg.AllowedOrigins()), ", "))
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(env.Stdout, "warning: %s\n", w)
	}
	return nil
}

func fileState(path string) string {
	if _, err := os.Stat(path); err != nil {
		return " (absent)"
	}
	return ""
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"(none: every page is refused)"}
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type configRow struct{ key, value, source string }

// configRows lists every leaf key of c (a list and an environment's fields
// are leaves), its value as JSON and its source.
func configRows(c config.Config) []configRow {
	var rows []configRow
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if !f.IsExported() || name == "" || name == "-" {
					continue
				}
				walk(join(prefix, name), v.Field(i))
			}
		case reflect.Map:
			keys := make([]string, 0, v.Len())
			for _, k := range v.MapKeys() {
				keys = append(keys, k.String())
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(join(prefix, k), v.MapIndex(reflect.ValueOf(k)))
			}
		default:
			b, _ := json.Marshal(v.Interface())
			rows = append(rows, configRow{prefix, string(b), c.Source(prefix)})
		}
	}
	walk("", reflect.ValueOf(c))
	return rows
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// policyCmd is `cardagent policy generate --format F [--out FILE]`: the
// browser policies that let the allowed origins reach the agent without
// the Local Network Access prompt.
func policyCmd(_ context.Context, env *Env, args []string) error {
	use := "usage: cardagent policy generate --format " + strings.Join(installer.PolicyFormats, "|") + " [--out FILE] [--all-environments] [--config FILE]"
	if helpAsked(env, args, use) {
		return nil
	}
	if len(args) == 0 || args[0] != "generate" {
		return usageError{use}
	}
	fs := newFlags("policy generate", env)
	format := fs.String("format", "", "policy format: "+strings.Join(installer.PolicyFormats, ", "))
	out := fs.String("out", "", "write to this file (default: standard output)")
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath()+")")
	all := fs.Bool("all-environments", false, "allow the origins of every environment, not only the active one's")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if !slices.Contains(installer.PolicyFormats, *format) {
		return usageError{fmt.Sprintf("--format %q: want %s", *format, strings.Join(installer.PolicyFormats, ", "))}
	}
	cfg, err := config.LoadEffective(*cfgPath)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	file := *cfgPath
	if file == "" {
		file = config.DefaultPath()
	}
	origins := cfg.PageOrigins() // sign-in and prescribing pages
	source := file + " (environment " + cfg.Environment + ")"
	if *all {
		origins, source = allOrigins(cfg), file+" (every environment)"
	}
	if len(origins) == 0 {
		fmt.Fprintln(env.Stderr, "warning: no allowed origin is configured: the policy lists none")
	}
	data, err := installer.BrowserPolicy(*format, origins, source)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = env.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "wrote %s (%d origins)\n", *out, len(origins))
	return nil
}

func allOrigins(c config.Config) []string {
	names := make([]string, 0, len(c.Environments))
	for n := range c.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		for _, o := range slices.Concat(c.Environments[n].Origins, c.Environments[n].SigningOrigins) {
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	for _, o := range c.ExtraOrigins {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
