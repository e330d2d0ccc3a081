package packaging_test

import (
	"bytes"
	"debug/macho"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cardagent/cardagent/installer/packaging"
)

// thinMachO writes a minimal thin 64-bit Mach-O executable: the header
// of <mach-o/loader.h> (magic 0xFEEDFACF, little-endian) with no load
// commands, then filler bytes that identify it.
func thinMachO(t *testing.T, cpu macho.Cpu, sub uint32, filler byte, n int) string {
	t.Helper()
	var b bytes.Buffer
	for _, v := range []uint32{macho.Magic64, uint32(cpu), sub, uint32(macho.TypeExec), 0, 0, 0, 0} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.Write(bytes.Repeat([]byte{filler}, n))
	p := filepath.Join(t.TempDir(), cpu.String())
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUniversalMachO(t *testing.T) {
	arm := thinMachO(t, macho.CpuArm64, 0, 0xA1, 40000)
	amd := thinMachO(t, macho.CpuAmd64, 3, 0xB2, 5000)
	out := filepath.Join(t.TempDir(), "cardagent")
	if err := packaging.UniversalMachO(out, arm, amd); err != nil {
		t.Fatal(err)
	}
	ff, err := macho.OpenFat(out)
	if err != nil {
		t.Fatalf("debug/macho cannot read the universal binary: %v", err)
	}
	defer ff.Close()
	if len(ff.Arches) != 2 {
		t.Fatalf("%d slices, want 2", len(ff.Arches))
	}
	raw, _ := os.ReadFile(out)
	for i, want := range []struct {
		cpu  macho.Cpu
		sub  uint32
		file string
	}{{macho.CpuArm64, 0, arm}, {macho.CpuAmd64, 3, amd}} {
		a := ff.Arches[i]
		if a.Cpu != want.cpu || a.SubCpu != want.sub || a.Align != 14 || a.Offset%(1<<14) != 0 {
			t.Errorf("slice %d: %+v", i, a.FatArchHeader)
		}
		thin, _ := os.ReadFile(want.file)
		if got := raw[a.Offset : a.Offset+a.Size]; !bytes.Equal(got, thin) {
			t.Errorf("slice %d (%v) is not the thin program", i, want.cpu)
		}
	}
}

func TestUniversalMachORefuses(t *testing.T) {
	arm := thinMachO(t, macho.CpuArm64, 0, 1, 10)
	text := filepath.Join(t.TempDir(), "script")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(t.TempDir(), "out")
	for name, in := range map[string][]string{
		"nothing":        nil,
		"not Mach-O":     {arm, text},
		"same CPU twice": {arm, thinMachO(t, macho.CpuArm64, 0, 2, 10)},
	} {
		if err := packaging.UniversalMachO(out, in...); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: wrote %s", name, out)
		}
	}
}
