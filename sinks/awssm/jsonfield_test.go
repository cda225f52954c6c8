package awssm

import (
	"errors"
	"testing"
)

func TestSetFieldKeepsOtherFieldsInOrder(t *testing.T) {
	tests := []struct {
		name, in, key, value, want string
		existed                    bool
	}{
		{"replace middle", `{"zeta":"1","api_key":"old","alpha":{"n":[1, 2]},"num":1.50}`, "api_key", "new",
			`{"zeta":"1","api_key":"new","alpha":{"n":[1, 2]},"num":1.50}`, true},
		{"append new field", `{"user":"svc"}`, "api_key", "new", `{"user":"svc","api_key":"new"}`, false},
		{"empty string is an empty object", ``, "api_key", "new", `{"api_key":"new"}`, false},
		{"empty object", ` { } `, "k", "v", `{"k":"v"}`, false},
		{"no html escaping", `{"a":"<b>"}`, "k", "x<&>y", `{"a":"<b>","k":"x<&>y"}`, false},
		{"escaped key matched", `{"a\u0062":"old"}`, "ab", "new", `{"ab":"new"}`, true},
		{"duplicates all set", `{"k":"1","x":null,"k":"2"}`, "k", "3", `{"k":"3","x":null,"k":"3"}`, true},
		{"quotes in value", `{}`, "k", `a"b\c`, `{"k":"a\"b\\c"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, existed, err := setField(tt.in, tt.key, tt.value)
			if err != nil {
				t.Fatalf("setField: %v", err)
			}
			if got != tt.want || existed != tt.existed {
				t.Errorf("setField = %s, existed %v; want %s, %v", got, existed, tt.want, tt.existed)
			}
			v, ok, err := getField(got, tt.key)
			if err != nil || !ok || v != tt.value {
				t.Errorf("getField after setField = %q, %v, %v", v, ok, err)
			}
		})
	}
}

func TestSetFieldRejectsNonObjects(t *testing.T) {
	for _, in := range []string{`plain-text-key`, `"a string"`, `[1,2]`, `42`, `null`, `{"a":1`, `{"a":1} trailing`, `{"a":1}{}`} {
		if _, _, err := setField(in, "k", "v"); !errors.Is(err, errNotObject) {
			t.Errorf("setField(%q): err = %v, want errNotObject", in, err)
		}
	}
}

func TestGetField(t *testing.T) {
	if _, ok, err := getField(`{"a":"1"}`, "k"); ok || err != nil {
		t.Errorf("missing field: ok %v err %v", ok, err)
	}
	if _, _, err := getField(`{"k":1}`, "k"); err == nil {
		t.Errorf("number field: no error")
	}
	if v, ok, err := getField(`{"k":"1","k":"2"}`, "k"); v != "2" || !ok || err != nil {
		t.Errorf("duplicate field: %q %v %v, want the last", v, ok, err)
	}
}
