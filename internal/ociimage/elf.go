package ociimage

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// machines maps GOARCH to its ELF machine.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386,
	"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV, "loong64": elf.EM_LOONGARCH,
}

// StaticELF returns why data is not a statically linked ELF executable for the Go
// architecture arch (no program interpreter, no DT_NEEDED libraries), or nil.
func StaticELF(data []byte, arch string) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	want, ok := machines[arch]
	if !ok {
		return fmt.Errorf("architecture %q: unknown ELF machine", arch)
	}
	if f.Machine != want {
		return fmt.Errorf("ELF machine is %s, want %s for %s", f.Machine, want, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked: has a program interpreter (PT_INTERP)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("reading DT_NEEDED: %w", err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("dynamically linked: needs %v", libs)
	}
	if f.Type != elf.ET_EXEC {
		return fmt.Errorf("ELF type is %s, want %s", f.Type, elf.ET_EXEC)
	}
	return nil
}
