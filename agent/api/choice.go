package api

import (
	"encoding/json"
	"errors"
	"fmt"
)

// maxCardIDLen bounds the card field: ids are hex GUIDs, serial numbers or
// certificate hashes, far shorter.
const maxCardIDLen = 128

// parseCardField decodes the optional "card" field: the id status reports
// for a card (card.id), a string of 1 to 128 printable ASCII characters.
func parseCardField(v json.RawMessage, out *string) error {
	var id string
	if err := json.Unmarshal(v, &id); err != nil {
		return errors.New(`field "card" must be a string (a card's id from status)`)
	}
	if id == "" || len(id) > maxCardIDLen {
		return fmt.Errorf(`field "card" must be 1 to %d characters`, maxCardIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return errors.New(`field "card" must be printable ASCII`)
		}
	}
	*out = id
	return nil
}
