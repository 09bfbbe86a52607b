// errc and to_string, result<T>, events operators, ids.
#include "loop.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <type_traits>

namespace {

using tinyloop::errc;
using tinyloop::events;

constexpr errc all_errc[] = {errc::ok,         errc::full,    errc::not_found, errc::invalid_argument,
                             errc::already_exists, errc::os_error, errc::unsupported, errc::cancelled};

// ---- errc ---------------------------------------------------------------------------------------

static_assert(std::is_same_v<std::underlying_type_t<errc>, std::uint8_t>);
static_assert(static_cast<int>(errc::ok) == 0, "errc::ok must be zero");

TEST(errors, errc_values_are_distinct) {
  std::set<int> seen;
  for (errc e : all_errc) EXPECT_TRUE(seen.insert(static_cast<int>(e)).second) << static_cast<int>(e);
}

TEST(errors, to_string_names_every_value) {
  std::set<std::string> names;
  for (errc e : all_errc) {
    const char* s = tinyloop::to_string(e);
    ASSERT_NE(s, nullptr) << static_cast<int>(e);
    EXPECT_GT(std::strlen(s), 0u) << static_cast<int>(e);
    EXPECT_TRUE(names.insert(s).second) << "duplicate name " << s;
  }
  EXPECT_STREQ(tinyloop::to_string(errc::ok), "ok");
  EXPECT_STREQ(tinyloop::to_string(errc::full), "full");
  EXPECT_STREQ(tinyloop::to_string(errc::not_found), "not_found");
  EXPECT_STREQ(tinyloop::to_string(errc::invalid_argument), "invalid_argument");
  EXPECT_STREQ(tinyloop::to_string(errc::already_exists), "already_exists");
  EXPECT_STREQ(tinyloop::to_string(errc::os_error), "os_error");
  EXPECT_STREQ(tinyloop::to_string(errc::unsupported), "unsupported");
  EXPECT_STREQ(tinyloop::to_string(errc::cancelled), "cancelled");
}

TEST(errors, to_string_of_out_of_range_value_is_not_null) {
  const char* s = tinyloop::to_string(static_cast<errc>(200));
  ASSERT_NE(s, nullptr);
  EXPECT_GT(std::strlen(s), 0u);
}

TEST(errors, to_string_is_noexcept) { static_assert(noexcept(tinyloop::to_string(errc::ok))); }

// ---- result<T> ----------------------------------------------------------------------------------

using int_result = tinyloop::result<int>;

static_assert(!std::is_convertible_v<int_result, bool>, "operator bool must be explicit");
static_assert(std::is_constructible_v<bool, int_result>);

TEST(errors, result_with_value_is_ok) {
  const int_result r(42);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(r.error(), errc::ok);
}

TEST(errors, result_with_error_is_not_ok) {
  for (errc e : all_errc) {
    if (e == errc::ok) continue;
    const int_result r(e);
    EXPECT_FALSE(r.ok()) << tinyloop::to_string(e);
    EXPECT_FALSE(static_cast<bool>(r));
    EXPECT_EQ(r.error(), e);
  }
}

TEST(errors, result_of_id_with_error_holds_invalid_id) {
  const tinyloop::result<tinyloop::timer_id> r(errc::full);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.value(), tinyloop::timer_id{});
}

TEST(errors, result_members_are_noexcept) {
  const int_result r(1);
  static_assert(noexcept(r.ok()));
  static_assert(noexcept(r.error()));
  static_assert(noexcept(r.value()));
  static_assert(noexcept(static_cast<bool>(r)));
  SUCCEED();
}

// ---- events -------------------------------------------------------------------------------------

static_assert(static_cast<int>(events::none) == 0 && static_cast<int>(events::read) == 1 &&
              static_cast<int>(events::write) == 2 && static_cast<int>(events::error) == 4 &&
              static_cast<int>(events::hangup) == 8);
static_assert((events::read | events::write) == static_cast<events>(3), "| is constexpr");
static_assert(((events::read | events::write) & events::write) == events::write, "& is constexpr");
static_assert(tinyloop::any(events::hangup) && !tinyloop::any(events::none), "any is constexpr");

constexpr events or_assign() {
  events e = events::read;
  e |= events::hangup;
  return e;
}
constexpr events and_assign() {
  events e = events::read | events::write | events::error;
  e &= events::write | events::hangup;
  return e;
}
static_assert(or_assign() == (events::read | events::hangup), "|= is constexpr");
static_assert(and_assign() == events::write, "&= is constexpr");

TEST(errors, events_or_combines_bits) {
  events e = events::none;
  e |= events::read;
  e |= events::write;
  EXPECT_EQ(e, events::read | events::write);
  EXPECT_TRUE(tinyloop::any(e & events::read));
  EXPECT_TRUE(tinyloop::any(e & events::write));
  EXPECT_FALSE(tinyloop::any(e & events::error));
}

TEST(errors, events_and_masks_bits) {
  events e = events::read | events::error | events::hangup;
  e &= events::error | events::write;
  EXPECT_EQ(e, events::error);
  EXPECT_EQ(events::read & events::write, events::none);
}

TEST(errors, events_any_is_false_only_for_none) {
  EXPECT_FALSE(tinyloop::any(events::none));
  for (int bits = 1; bits < 16; ++bits) EXPECT_TRUE(tinyloop::any(static_cast<events>(bits))) << bits;
}

TEST(errors, events_operators_are_noexcept) {
  events e = events::read;
  static_assert(noexcept(e | events::write));
  static_assert(noexcept(e & events::write));
  static_assert(noexcept(e |= events::write));
  static_assert(noexcept(e &= events::write));
  static_assert(noexcept(tinyloop::any(e)));
  SUCCEED();
}

// ---- ids ----------------------------------------------------------------------------------------

template <class Id>
constexpr bool id_traits_hold() {
  return std::is_trivially_copyable_v<Id> && std::is_default_constructible_v<Id> &&
         std::is_nothrow_default_constructible_v<Id> && std::is_copy_assignable_v<Id>;
}
static_assert(id_traits_hold<tinyloop::source_id>(), "source_id: trivially copyable, default constructible");
static_assert(id_traits_hold<tinyloop::timer_id>(), "timer_id: trivially copyable, default constructible");
static_assert(!std::is_convertible_v<tinyloop::source_id, tinyloop::timer_id>, "ids of different kinds do not mix");
static_assert(!std::is_convertible_v<tinyloop::timer_id, tinyloop::source_id>, "ids of different kinds do not mix");
static_assert(tinyloop::source_id{} == tinyloop::source_id{}, "== is constexpr");
static_assert(!(tinyloop::timer_id{} != tinyloop::timer_id{}), "!= is constexpr");

TEST(errors, default_ids_compare_equal) {
  tinyloop::source_id a, b;
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a != b);
  tinyloop::timer_id c, d;
  EXPECT_TRUE(c == d);
  EXPECT_FALSE(c != d);
}

TEST(errors, copied_id_compares_equal) {
  const tinyloop::timer_id a;
  tinyloop::timer_id b;
  b = a;
  EXPECT_EQ(a, b);
}

}  // namespace
