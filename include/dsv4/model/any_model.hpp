// A type-erased model: any Model<B, P> whose residual policy has Streams streams behind one
// non-template interface, so code that chooses its backend, numerics and weight types at run time
// instantiates each model once (in the translation unit that constructs the AnyModel) while the
// code that uses it (generate(), perplexity(), a command line) is compiled once for all of them.
// It satisfies GenerativeModel and shares Model's ModelState and ModelOutput; a call costs one
// virtual dispatch over the work of a whole forward pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/model/model.hpp"

namespace dsv4 {

template <std::size_t Streams>
class BasicAnyModel {
 public:
  using State = ModelState;
  using Output = ModelOutput;
  static constexpr std::size_t streams = Streams;

  BasicAnyModel() = default;

  /// Takes a model (moved in). `label` names its backend for reports (e.g. "cpu").
  template <class M>
  requires(!std::is_same_v<std::remove_cvref_t<M>, BasicAnyModel> &&
           std::remove_cvref_t<M>::streams ==
               Streams) explicit BasicAnyModel(M&& model, std::string label = {})
      : impl_(std::make_shared<const Impl<std::remove_cvref_t<M>>>(std::forward<M>(model))),
        label_(std::move(label)) {}

  bool has_value() const noexcept { return impl_ != nullptr; }
  const std::string& label() const noexcept { return label_; }

  const ModelConfig& config() const { return get().config(); }
  std::size_t dim() const { return static_cast<std::size_t>(config().dim); }
  std::size_t vocab_size() const { return static_cast<std::size_t>(config().vocab_size); }
  std::size_t n_mtp() const { return get().n_mtp(); }

  State new_state() const { return get().new_state(); }
  /// As Model::forward; hidden = false leaves Output::hidden empty (no copy of the last block's
  /// output when no MTP step follows).
  Output forward(std::span<const std::int32_t> tokens, std::int64_t start_pos, State& st,
                 bool all_logits = true, bool hidden = true) const {
    Output out;
    forward_into(tokens, start_pos, st, out, all_logits, hidden);
    return out;
  }
  Output prefill(std::span<const std::int32_t> tokens, State& st, bool all_logits = true) const {
    return forward(tokens, 0, st, all_logits);
  }
  Output decode(std::int32_t token, State& st) const {
    return forward(std::span<const std::int32_t>(&token, 1), st.next_pos, st, true);
  }
  /// As Model::forward_into: the result in `out`, whose vectors keep their capacity.
  void forward_into(std::span<const std::int32_t> tokens, std::int64_t start_pos, State& st,
                    Output& out, bool all_logits = true, bool hidden = true) const {
    get().forward_into(tokens, start_pos, st, out, all_logits, hidden);
  }
  /// One decode step at st.next_pos into `out` (Model::decode_into).
  void decode_into(std::int32_t token, State& st, Output& out) const {
    forward_into(std::span<const std::int32_t>(&token, 1), st.next_pos, st, out, true);
  }
  void rewind(State& st, std::int64_t pos) const { get().rewind(st, pos); }
  Output mtp_forward(std::span<const float> hidden, std::span<const std::int32_t> tokens,
                     std::int64_t start_pos, State& st, std::size_t j = 0,
                     bool all_logits = true) const {
    Output out;
    mtp_forward_into(hidden, tokens, start_pos, st, out, j, all_logits);
    return out;
  }
  /// As Model::mtp_forward_into: the result in `out`, whose vectors keep their capacity.
  void mtp_forward_into(std::span<const float> hidden, std::span<const std::int32_t> tokens,
                        std::int64_t start_pos, State& st, Output& out, std::size_t j = 0,
                        bool all_logits = true) const {
    get().mtp_forward_into(hidden, tokens, start_pos, st, out, j, all_logits);
  }

 private:
  struct Interface {
    virtual ~Interface() = default;
    virtual const ModelConfig& config() const = 0;
    virtual std::size_t n_mtp() const = 0;
    virtual State new_state() const = 0;
    virtual void forward_into(std::span<const std::int32_t>, std::int64_t, State&, Output&, bool,
                              bool) const = 0;
    virtual void rewind(State&, std::int64_t) const = 0;
    virtual void mtp_forward_into(std::span<const float>, std::span<const std::int32_t>,
                                  std::int64_t, State&, Output&, std::size_t, bool) const = 0;
  };

  template <class M>
  struct Impl final : Interface {
    explicit Impl(M m) : model(std::move(m)) {}
    const ModelConfig& config() const override { return model.config(); }
    std::size_t n_mtp() const override { return model.n_mtp(); }
    State new_state() const override { return model.new_state(); }
    void forward_into(std::span<const std::int32_t> t, std::int64_t pos, State& st, Output& out,
                      bool all, bool hidden) const override {
      model.forward_into(t, pos, st, out, all, nullptr, hidden);
    }
    void rewind(State& st, std::int64_t pos) const override { model.rewind(st, pos); }
    void mtp_forward_into(std::span<const float> h, std::span<const std::int32_t> t,
                          std::int64_t pos, State& st, Output& out, std::size_t j,
                          bool all) const override {
      model.mtp_forward_into(h, t, pos, st, out, j, all);
    }
    M model;
  };

  const Interface& get() const {
    DSV4_CHECK(impl_ != nullptr, InputError, "model: an empty AnyModel was used");
    return *impl_;
  }

  std::shared_ptr<const Interface> impl_;
  std::string label_;
};

/// A type-erased V4 model (mHC with 4 streams).
using AnyModel = BasicAnyModel<4>;

}  // namespace dsv4
