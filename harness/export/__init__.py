"""Export a fine-tuned model for serving: GGUF weights plus an Ollama Modelfile."""
