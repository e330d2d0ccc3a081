package config

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows/registry"
)

// SystemPolicyPath is the registry key (under HKEY_LOCAL_MACHINE) Group
// Policy, Intune and the MSI's properties write IT policy to.
const SystemPolicyPath = `Software\Policies\cardagent`

// SystemPolicy is where this system keeps IT policy: HKLM\Software\Policies\cardagent.
func SystemPolicy() PolicySource {
	return RegistryPolicy{Key: SystemPolicyPath, Reader: hklmReader{}}
}

// hklmReader reads HKEY_LOCAL_MACHINE (64-bit view).
type hklmReader struct{}

func (hklmReader) ReadValues(key string) (map[string]any, bool, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer k.Close()
	names, err := k.ReadValueNames(0)
	if err != nil {
		return nil, false, err
	}
	vals := make(map[string]any, len(names))
	for _, name := range names {
		_, typ, err := k.GetValue(name, nil)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", name, err)
		}
		switch typ {
		case registry.SZ, registry.EXPAND_SZ:
			s, _, err := k.GetStringValue(name)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", name, err)
			}
			vals[name] = s
		case registry.MULTI_SZ:
			ss, _, err := k.GetStringsValue(name)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", name, err)
			}
			vals[name] = ss
		case registry.DWORD, registry.QWORD:
			n, _, err := k.GetIntegerValue(name)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", name, err)
			}
			vals[name] = int64(n)
		default:
			return nil, false, fmt.Errorf("%s: registry type %d is not supported: use REG_SZ, REG_MULTI_SZ or REG_DWORD", name, typ)
		}
	}
	return vals, true, nil
}
