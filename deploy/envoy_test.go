package deploy

import (
	"errors"
	"fmt"
	"strings"

	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"

	// The typed_config types the manifests use, registered for protojson
	// and anypb.UnmarshalNew. A type missing here is an "unable to resolve"
	// error naming it.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// validateEnvoy runs protoc-gen-validate's ValidateAll on m and on every
// message packed in an Any inside it, at any depth: a message's ValidateAll
// checks its nested messages but stops at an Any (Bootstrap.ValidateAll
// does not look inside a listener's http_connection_manager). It returns
// m and every unpacked message, for the policy checks.
func validateEnvoy(m proto.Message) ([]proto.Message, error) {
	found := []proto.Message{m}
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walkAnys(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), func(at string, a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
			return
		}
		more, err := validateEnvoy(inner)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", at, a.GetTypeUrl(), err))
		}
		found = append(found, more...)
	})
	if w, ok := m.(*wasmfilterv3.Wasm); ok {
		if _, err := envoyWasmConfig(w); err != nil {
			errs = append(errs, err)
		}
	}
	return found, errors.Join(errs...)
}

// walkAnys calls fn for every Any directly inside m (not inside the Anys
// themselves: validateEnvoy recurses after unpacking).
func walkAnys(m protoreflect.Message, at string, fn func(at string, a *anypb.Any)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		name := at + "." + string(fd.Name())
		visit := func(at string, mv protoreflect.Message) {
			if a, ok := mv.Interface().(*anypb.Any); ok {
				fn(at, a)
				return
			}
			walkAnys(mv, at, fn)
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				visit(fmt.Sprintf("%s[%d]", name, i), l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(fmt.Sprintf("%s[%s]", name, k.String()), mv.Message())
				return true
			})
		default:
			visit(name, v.Message())
		}
		return true
	})
}

// envoyWasmConfig decodes the capture filter's configuration, a JSON
// string in a google.protobuf.StringValue, as the filter reads it.
func envoyWasmConfig(w *wasmfilterv3.Wasm) (capturefilter.Config, error) {
	c := w.GetConfig().GetConfiguration()
	if c == nil {
		return capturefilter.Config{}, errors.New("wasm filter: no configuration")
	}
	var s wrapperspb.StringValue
	if err := c.UnmarshalTo(&s); err != nil {
		return capturefilter.Config{}, fmt.Errorf("wasm filter configuration: want a google.protobuf.StringValue holding JSON: %w", err)
	}
	wc, err := decodeWasmConfig([]byte(s.GetValue()))
	if err != nil {
		return wc, fmt.Errorf("wasm filter configuration: %w", err)
	}
	return wc, nil
}

// decodeWasmConfig reads the capture filter's configuration (Istio's
// WasmPlugin pluginConfig, Envoy's wasm configuration) with the filter's own
// parser, which reports every unknown key and bad value. The filter itself
// runs on with defaults in their place, so a misspelt key would otherwise
// pass unnoticed until the records came out wrong.
func decodeWasmConfig(b []byte) (capturefilter.Config, error) {
	return capturefilter.ParseConfig(b)
}

// typeName is an Any's message name: its type URL after the last "/".
func typeName(a *anypb.Any) string {
	u := a.GetTypeUrl()
	return u[strings.LastIndexByte(u, '/')+1:]
}
