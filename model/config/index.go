package config

import (
	"encoding/json"
	"fmt"
)

// ModelIndex is a pipeline's model_index.json.
type ModelIndex struct {
	ClassName        string // e.g. StableDiffusionPipeline
	DiffusersVersion string
	// Components maps each present component (text_encoder, unet, ...) to
	// its library and class; entries written as [null, null] are left out.
	Components            map[string]Component
	RequiresSafetyChecker bool
}

// Component is a [library, class] pair of model_index.json.
type Component struct {
	Library string
	Class   string
}

// LoadModelIndex reads a model_index.json.
func LoadModelIndex(path string) (ModelIndex, error) {
	b, err := readFile(path)
	if err != nil {
		return ModelIndex{}, fmt.Errorf("config: model index: %w", err)
	}
	m, err := ParseModelIndex(b)
	if err != nil {
		return ModelIndex{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return m, nil
}

// ParseModelIndex parses a model_index.json.
func ParseModelIndex(b []byte) (ModelIndex, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(pythonJSON(b), &raw); err != nil {
		return ModelIndex{}, fmt.Errorf("config: model index: %w", err)
	}
	if raw == nil {
		return ModelIndex{}, fmt.Errorf("config: model index: not a JSON object")
	}
	m := ModelIndex{Components: map[string]Component{}}
	for k, v := range raw {
		var err error
		switch k {
		case "_class_name":
			err = json.Unmarshal(v, &m.ClassName)
		case "_diffusers_version":
			err = json.Unmarshal(v, &m.DiffusersVersion)
		case "requires_safety_checker":
			err = json.Unmarshal(v, &m.RequiresSafetyChecker)
		default:
			var pair []*string
			if json.Unmarshal(v, &pair) != nil || len(pair) != 2 {
				continue // some other pipeline option
			}
			if pair[0] == nil || pair[1] == nil {
				continue
			}
			m.Components[k] = Component{Library: *pair[0], Class: *pair[1]}
		}
		if err != nil {
			return ModelIndex{}, fmt.Errorf("config: model index: %s: %w", k, err)
		}
	}
	return m, nil
}
