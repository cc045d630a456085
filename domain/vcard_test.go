package domain

import (
	"errors"
	"reflect"
	"testing"
)

func TestVCardSet(t *testing.T) {
	const card = `<vCard xmlns="vcard-temp"><FN>Juliet</FN></vCard>`
	var v VCard
	tests := []struct {
		name    string
		state   VCard
		xml     string
		max     int
		want    []Payload
		wantErr error
	}{
		{"first", v, card, 100, []Payload{VCardSet{XML: card}}, nil},
		{"unchanged", VCard{XML: card}, card, 100, nil, nil},
		{"replaced", VCard{XML: "<vCard xmlns='vcard-temp'/>"}, card, 0, []Payload{VCardSet{XML: card}}, nil},
		{"too large", v, card, 10, nil, ErrItemTooLarge},
		{"empty", v, "", 100, nil, ErrEmptyItem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.state.Set(tt.xml, tt.max)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("payloads = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestVCardFoldThroughCatalogue(t *testing.T) {
	const card = `<vCard xmlns="vcard-temp"><NICKNAME>j</NICKNAME></vCard>`
	evs, err := NewEvents(fixedClock, VCardSet{XML: "<vCard xmlns='vcard-temp'/>"}, VCardSet{XML: card})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := CurrentSchemaVersion(TypeVCardSet); !ok || v != 1 {
		t.Fatalf("CurrentSchemaVersion(%s) = %d, %v", TypeVCardSet, v, ok)
	}
	got, err := Fold(VCard{}, VCard.Apply, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if got.XML != card {
		t.Errorf("folded %q, want %q", got.XML, card)
	}
}
