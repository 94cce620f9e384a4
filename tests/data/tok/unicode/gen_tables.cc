#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
using json = nlohmann::json;
static std::string enc(uint32_t cp) {
  std::string o;
  utf8proc_uint8_t b[4];
  auto n = utf8proc_encode_char(cp, b);
  o.append((char*)b, n);
  return o;
}
static std::vector<uint32_t> dec(const std::string& s) {
  std::vector<uint32_t> v;
  utf8proc_int32_t c;
  size_t i = 0;
  while (i < s.size()) {
    auto n = utf8proc_iterate((const utf8proc_uint8_t*)s.data() + i, s.size() - i, &c);
    v.push_back(c);
    i += n;
  }
  return v;
}
static std::string body(const std::vector<std::pair<uint32_t, uint32_t>>& r) {
  std::string s;
  char buf[64];
  for (auto [a, b] : r) {
    if (a == b)
      snprintf(buf, 64, "\\\\x{%X}", a);
    else
      snprintf(buf, 64, "\\\\x{%X}-\\\\x{%X}", a, b);
    s += buf;
  }
  return s;
}
static std::vector<std::pair<uint32_t, uint32_t>> ranges(const std::vector<uint32_t>& v) {
  std::vector<std::pair<uint32_t, uint32_t>> r;
  for (auto c : v) {
    if (!r.empty() && r.back().second + 1 == c)
      r.back().second = c;
    else
      r.push_back({c, c});
  }
  return r;
}
int main(int argc, char** argv) {
  json d = json::parse(std::ifstream("/tmp/tkref/probe.json"));
  std::string mode = argv[1];
  if (mode == "classes") {
    std::cout << "static const ClassFix kClassFixes[] = {\n";
    for (auto& [cls, rs] : d["classes"].items()) {
      if (cls[0] == '(') continue;
      std::vector<char> on(0x110000, 0);
      for (auto& r : rs)
        for (uint32_t c = r[0]; c <= (uint32_t)r[1]; c++) on[c] = 1;
      int err;
      PCRE2_SIZE off;
      auto code = pcre2_compile((PCRE2_SPTR)cls.data(), cls.size(), PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
      auto md = pcre2_match_data_create(1, nullptr);
      std::vector<uint32_t> extra, missing;
      for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        auto s = enc(c);
        int rc = pcre2_match(code, (PCRE2_SPTR)s.data(), s.size(), 0, PCRE2_ANCHORED, md, nullptr);
        bool p = rc >= 0 && pcre2_get_ovector_pointer(md)[1] == s.size();
        if (on[c] && !p) extra.push_back(c);
        if (!on[c] && p) missing.push_back(c);
      }
      std::string name = cls[1] == 'p' ? cls.substr(3, cls.size() - 4) : cls.substr(1);
      std::cerr << cls << " extra " << extra.size() << " missing " << missing.size() << "\n";
      if (extra.empty() && missing.empty()) continue;
      std::cout << "    {\"" << name << "\", \"" << body(ranges(extra)) << "\", \"" << body(ranges(missing))
                << "\"},\n";
    }
    std::cout << "};\n";
  } else if (mode == "norm") {
    std::map<std::string, utf8proc_uint8_t* (*)(const utf8proc_uint8_t*)> f = {
        {"NFD", utf8proc_NFD}, {"NFKD", utf8proc_NFKD}, {"NFC", utf8proc_NFC}, {"NFKC", utf8proc_NFKC}};
    std::set<uint32_t> bad;
    for (auto& [form, diffs] : d["norm"].items()) {
      int n = 0;
      for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        if (c == 1) continue;
        auto s = enc(c);
        auto r = f[form]((const utf8proc_uint8_t*)s.c_str());
        std::string rs((char*)r);
        free(r);
        auto mine = dec(rs);
        std::vector<uint32_t> theirs;
        auto k = std::to_string(c);
        if (diffs.contains(k))
          theirs = diffs[k].get<std::vector<uint32_t>>();
        else
          theirs = {c};
        if (mine != theirs) {
          bad.insert(c);
          if (n++ < 5)
            std::cerr << form << " " << std::hex << c << std::dec << " mine " << mine.size() << " theirs "
                      << theirs.size() << "\n";
        }
      }
      std::cerr << form << " diffs " << n << "\n";
    }
    // ccc probes
    std::set<uint32_t> sa(d["swapA"].begin(), d["swapA"].end()), sb(d["swapB"].begin(), d["swapB"].end());
    int n = 0;
    for (uint32_t c = 0; c < 0x110000; c++) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      auto p = utf8proc_get_property(c);
      int cc = p->combining_class;
      if (p->decomp_seqindex != UINT16_MAX) continue;
      bool a = cc > 1, b = cc > 0 && cc < 240;
      if (a != (bool)sa.count(c) || b != (bool)sb.count(c)) {
        bad.insert(c);
        if (n++ < 10) std::cerr << "ccc " << std::hex << c << std::dec << " " << cc << "\n";
      }
    }
    std::cerr << "ccc diffs " << n << "\n";
    json out = json::array();
    for (auto c : bad) out.push_back(c);
    std::cout << out.dump() << "\n";
  } else if (mode == "compseq") {
    // canonical decompositions (utf8proc) of every composite, for probing composition
    json out = json::object();
    for (uint32_t c = 0xC0; c < 0x110000; c++) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      if (c >= 0xAC00 && c <= 0xD7A3) continue;
      auto s = enc(c);
      auto r = utf8proc_NFD((const utf8proc_uint8_t*)s.c_str());
      std::string rs((char*)r);
      free(r);
      if (rs != s) out[std::to_string(c)] = rs;
    }
    std::cout << out.dump() << "\n";
  }
}
