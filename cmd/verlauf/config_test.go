package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The example file must state exactly the defaults, so that it documents
// what a server without a config file does.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	var fromFile Config
	md, err := toml.DecodeFile("../../verlauf.example.toml", &fromFile)
	if err != nil {
		t.Fatal(err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		t.Fatalf("example has keys the server does not know: %v", un)
	}
	if def := defaultConfig(); !reflect.DeepEqual(fromFile, def) {
		t.Fatalf("example file and defaults differ:\nfile:    %+v\ndefault: %+v", fromFile, def)
	}
	// And every key of the config struct appears in the example.
	keys := map[string]bool{}
	for _, k := range md.Keys() {
		keys[k.String()] = true
	}
	walkKeys(t, reflect.TypeOf(Config{}), "", func(key string) {
		if !keys[key] {
			t.Errorf("key %s is not documented in verlauf.example.toml", key)
		}
	})
}

func walkKeys(t *testing.T, typ reflect.Type, prefix string, fn func(string)) {
	t.Helper()
	for i := range typ.NumField() {
		f := typ.Field(i)
		key := f.Tag.Get("toml")
		if prefix != "" {
			key = prefix + "." + key
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration{}) {
			walkKeys(t, f.Type, key, fn)
			continue
		}
		fn(key)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "[server]\ndomian = 'x'\n", "unknown key"},
		{"bad duration", "[c2s]\nidle_timeout = 'soon'\n", "idle_timeout"},
		{"stanza too small", "[c2s]\nmax_stanza_size = 100\n", "10000"},
		{"half a certificate", "[tls]\ncert_file = 'a.pem'\n", "go together"},
		{"bad backend", "[store]\nbackend = 'mysql'\n", "not supported"},
		{"few iterations", "[accounts]\nscram_iterations = 1000\n", "4096"},
		{"bad history default", "[archive]\ndefault = 'sometimes'\n", "archive.default"},
		{"not toml", "this is = = not toml", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".toml")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := loadConfig(filepath.Join(dir, "missing.toml")); err == nil {
		t.Fatal("a missing config file must be an error")
	}
}

func TestLoadConfigOverridesOnlyGivenKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.toml")
	if err := os.WriteFile(p, []byte("[server]\ndomain = 'example.org'\n[log]\nlevel = 'debug'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.Server.Domain = "example.org"
	want.Log.Level = "debug"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}
