// Registration of the dsv4 subcommands: each lives in its own file and adds itself to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace dsv4::cli {

/// `dsv4 plan`: the cost sheet of a configuration (plan_command.cpp).
void add_plan_command(CLI::App& app);

/// `dsv4 quantize`: llama-quantize's recipes for GGUF models (quantize_command.cpp).
void add_quantize_command(CLI::App& app);

/// `dsv4 convert`: a checkpoint directory to a llama.cpp deepseek4 GGUF (convert_command.cpp).
void add_convert_command(CLI::App& app);

/// `dsv4 inspect`: the tensors and configuration of a checkpoint or file (inspect_command.cpp).
void add_inspect_command(CLI::App& app);

/// `dsv4 tokenize` and `dsv4 detokenize`: the DeepSeek-V4 tokenizer (tokenize_command.cpp).
void add_tokenize_commands(CLI::App& app);

/// `dsv4 eval`: a model's logits on token ids, reference or llama.cpp numerics (eval_command.cpp).
void add_eval_command(CLI::App& app);

/// `dsv4 generate`: a text prompt continued by a model (generate_command.cpp).
void add_generate_command(CLI::App& app);

/// `dsv4 chat`: a conversation in the DeepSeek-V4 chat format (chat_command.cpp).
void add_chat_command(CLI::App& app);

/// `dsv4 perplexity`: llama-perplexity's figure, and KL divergence from a base
/// (perplexity_command.cpp).
void add_perplexity_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace dsv4::cli
