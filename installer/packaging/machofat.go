package packaging

import (
	"debug/macho"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// A universal ("fat") Mach-O file joins thin programs for several CPUs, as
// Apple's lipo -create does; macOS runs the slice for its own CPU. Layout
// (all big-endian, <mach-o/fat.h>):
//
//	fat_header { uint32 magic = 0xCAFEBABE; uint32 nfat_arch; }
//	fat_arch   { int32 cputype; int32 cpusubtype; uint32 offset; uint32 size; uint32 align; }  // per slice, align as a power of 2
//	then each thin file at its offset, a multiple of 1<<align.
//
// debug/macho.OpenFat reads it back (the tests do).

const (
	fatMagic     = 0xCAFEBABE
	fatHeader    = 8
	fatArchSize  = 20
	fatAlignLog2 = 14 // 16 KiB: arm64's page size, and a multiple of x86_64's
)

var errMachO = errors.New("not a thin 64-bit Mach-O program")

// UniversalMachO writes to out a universal binary made of the thin Mach-O
// programs thin, one per CPU type.
func UniversalMachO(out string, thin ...string) error {
	if len(thin) == 0 {
		return fmt.Errorf("universal binary: %w: no input", errMachO)
	}
	type slice struct {
		cpu, sub uint32
		data     []byte
	}
	var slices []slice
	for _, p := range thin {
		f, err := macho.Open(p)
		if err != nil {
			return fmt.Errorf("universal binary: %s: %w: %v", p, errMachO, err)
		}
		cpu, sub, magic := uint32(f.Cpu), f.SubCpu, f.Magic
		f.Close()
		if magic != macho.Magic64 {
			return fmt.Errorf("universal binary: %s: %w", p, errMachO)
		}
		for _, s := range slices {
			if s.cpu == cpu {
				return fmt.Errorf("universal binary: %s: a second program for CPU %v", p, macho.Cpu(cpu))
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("universal binary: %w", err)
		}
		slices = append(slices, slice{cpu, sub, b})
	}
	const align = 1 << fatAlignLog2
	roundUp := func(n uint64) uint64 { return (n + align - 1) &^ (align - 1) }
	head := make([]byte, fatHeader+fatArchSize*len(slices))
	binary.BigEndian.PutUint32(head[0:], fatMagic)
	binary.BigEndian.PutUint32(head[4:], uint32(len(slices)))
	off := roundUp(uint64(len(head)))
	offsets := make([]uint64, len(slices))
	for i, s := range slices {
		offsets[i] = off
		off = roundUp(off + uint64(len(s.data)))
		if off > 1<<32-1 {
			return fmt.Errorf("universal binary: over 4 GiB")
		}
		a := head[fatHeader+i*fatArchSize:]
		binary.BigEndian.PutUint32(a[0:], s.cpu)
		binary.BigEndian.PutUint32(a[4:], s.sub)
		binary.BigEndian.PutUint32(a[8:], uint32(offsets[i]))
		binary.BigEndian.PutUint32(a[12:], uint32(len(s.data)))
		binary.BigEndian.PutUint32(a[16:], fatAlignLog2)
	}
	last := len(slices) - 1
	body := make([]byte, offsets[last]+uint64(len(slices[last].data)))
	copy(body, head)
	for i, s := range slices {
		copy(body[offsets[i]:], s.data)
	}
	if err := os.WriteFile(out, body, 0o755); err != nil {
		return fmt.Errorf("universal binary: %w", err)
	}
	return nil
}
