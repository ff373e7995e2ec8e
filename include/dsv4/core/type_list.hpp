// A minimal compile-time list of types and a loop over it.
//
// STYLE.md §2.3 / §2.9: format lists (`AllFormats`), test instantiations and the runtime→type
// bridge are type lists rather than macro overload lists.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

namespace dsv4 {

/// An ordered list of types; holds no values.
template <class... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
  /// The same types as a std::tuple (what doctest's TEST_CASE_TEMPLATE_APPLY takes).
  using tuple = std::tuple<Ts...>;
};

namespace detail {
template <class L, class T>
struct type_list_contains;
template <class... Ts, class T>
struct type_list_contains<type_list<Ts...>, T>
    : std::bool_constant<(std::is_same_v<Ts, T> || ...)> {};

template <class A, class B>
struct type_list_concat;
template <class... As, class... Bs>
struct type_list_concat<type_list<As...>, type_list<Bs...>> {
  using type = type_list<As..., Bs...>;
};
}  // namespace detail

/// True when `T` is one of the types of the type_list `L`.
template <class L, class T>
inline constexpr bool type_list_contains_v = detail::type_list_contains<L, T>::value;

/// The types of `A` followed by those of `B`.
template <class A, class B>
using type_list_concat_t = typename detail::type_list_concat<A, B>::type;

/// Calls `fn.template operator()<T>()` once for every `T` of `L`, in order.
template <class L, class Fn>
constexpr void for_each_type(Fn&& fn) {
  [&]<class... Ts>(type_list<Ts...>*) {
    (fn.template operator()<Ts>(), ...);
  }(static_cast<L*>(nullptr));
}

}  // namespace dsv4
