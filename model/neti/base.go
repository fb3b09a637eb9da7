package neti

import (
	"fmt"
	"strings"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/model/sd"
)

// frozenWeights serves the text encoder (text_model.*) and UNet tensors
// of a model to one program (the training step holds both).
func frozenWeights(m *sd.Model) graph.WeightSource {
	text, un := m.TextWeights(), m.UNetWeights()
	return func(name string, shape []int) ([]float32, error) {
		if strings.HasPrefix(name, "text_model.") {
			return text(name, shape)
		}
		return un(name, shape)
	}
}

// tokenEmbedding is row id of the text encoder's token table.
func tokenEmbedding(m *sd.Model, id int) ([]float32, error) {
	tab, err := m.TextWeights()("text_model.embeddings.token_embedding.weight", []int{m.Text.Vocab, m.Text.Hidden})
	if err != nil {
		return nil, err
	}
	if id < 0 || id >= m.Text.Vocab {
		return nil, fmt.Errorf("neti: token id %d outside the %d-row embedding table", id, m.Text.Vocab)
	}
	return tab[id*m.Text.Hidden : (id+1)*m.Text.Hidden], nil
}

// tables is the model's training noise schedule.
func tables(m *sd.Model) (scheduler.Tables, error) { return scheduler.NewTables(m.Sched) }
