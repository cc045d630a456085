package migrations

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// rosterItemSetV1toV2 upgrades roster.item_set from v1 to v2.
//
// v1 stored an item's groups as one string, "group", joined with commas:
//
//	{"jid":"romeo@example.net","group":"Friends,Verona","subscription":"both","ver":7}
//
// which could not represent a group whose name contains a comma. v2 stores
// "groups" as an array. Splitting on commas is exactly what v1 readers did,
// so the upcast loses nothing that v1 had kept. Empty pieces are dropped
// (RFC 6121 forbids empty group names) and duplicates merged, keeping the
// first occurrence; every other field is carried over byte for byte.
func rosterItemSetV1toV2(body []byte) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("roster.item_set v1: %w", err)
	}
	if fields == nil {
		return nil, errors.New("roster.item_set v1: body is not an object")
	}
	raw, ok := fields["group"]
	delete(fields, "group")
	if ok && string(raw) != "null" {
		var joined string
		if err := json.Unmarshal(raw, &joined); err != nil {
			return nil, fmt.Errorf("roster.item_set v1: group: %w", err)
		}
		var groups []string
		seen := make(map[string]bool)
		for g := range strings.SplitSeq(joined, ",") {
			if g == "" || seen[g] {
				continue
			}
			seen[g] = true
			groups = append(groups, g)
		}
		if len(groups) > 0 {
			enc, err := json.Marshal(groups)
			if err != nil {
				return nil, fmt.Errorf("roster.item_set v1: groups: %w", err)
			}
			fields["groups"] = enc
		}
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("roster.item_set v1: %w", err)
	}
	return out, nil
}
