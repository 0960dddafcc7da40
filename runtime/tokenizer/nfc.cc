#include "runtime/tokenizer/nfc.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/utypes.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohost::runtime {

absl::StatusOr<std::optional<std::string>> NfcIfChanged(std::string_view text) {
  UErrorCode error = U_ZERO_ERROR;
  // ICU's own instance, made once and never freed.
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  if (U_SUCCESS(error) && nfc->isNormalizedUTF8(piece, error)) return std::nullopt;
  std::string out;
  if (U_SUCCESS(error)) {
    out.reserve(text.size());
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
    nfc->normalizeUTF8(0, piece, sink, nullptr, error);
  }
  if (U_FAILURE(error)) {
    return absl::InternalError(absl::StrCat("NFC normalization failed: ", u_errorName(error)));
  }
  return out;
}

}  // namespace cohost::runtime
