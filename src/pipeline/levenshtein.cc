// The rules of one iteration of LLaDA2.2's decoding of a block (docs/llada22.md, numbered as there).
#include "pipeline/levenshtein.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/kernels.h"

namespace llada2 {

LevenshteinParams LevenshteinParams::from_call(const ResolvedCall& call) {
  LevenshteinParams p;
  p.steps = call.steps;
  p.threshold = call.options.levenshtein.threshold;
  p.editing_threshold = call.options.levenshtein.editing_threshold;
  p.max_post_steps = call.options.max_post_steps;
  p.max_iterations = call.options.levenshtein.max_iterations;
  p.mask_id = call.mask_token_id;
  p.delete_id = call.delete_token_id;
  p.split_id = call.split_token_id;
  p.mask_in_argmax = call.options.levenshtein.mask_in_argmax;
  p.sampling = call.sampling;
  return p;
}

LevenshteinBlock LevenshteinBlock::enter(const int64_t* cells, int64_t K, int64_t mask_id) {
  LevenshteinBlock b;
  b.cells.assign(cells, cells + K);
  b.prompt.resize(size_t(K));
  b.added.assign(size_t(K), 0);
  for (int64_t j = 0; j < K; ++j) b.prompt[size_t(j)] = cells[j] != mask_id;
  b.initial = b.masks(mask_id);
  return b;
}

int64_t LevenshteinBlock::masks(int64_t mask_id) const { return std::count(cells.begin(), cells.end(), mask_id); }

int64_t LevenshteinBlock::original_masks(int64_t mask_id) const {
  int64_t n = 0;
  for (size_t j = 0; j < cells.size(); ++j) n += cells[j] == mask_id && !added[j];
  return n;
}

int64_t LevenshteinBlock::new_masks(int64_t mask_id) const { return masks(mask_id) - original_masks(mask_id); }

bool begin_iteration(LevenshteinBlock& blk, const LevenshteinParams& p) {
  if (blk.ended) return false;
  if (blk.step >= p.max_iterations) {
    blk.ended = true;
    return false;
  }
  // Rule 1: post counts the iterations since the last original mask was filled.
  blk.post = blk.original_masks(p.mask_id) > 0 ? 0 : blk.post + 1;
  // Rule 2.
  if (blk.masks(p.mask_id) == 0 && blk.post > p.max_post_steps) {
    blk.ended = true;
    return false;
  }
  return true;
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The logits of the block's cells as the picks see them: without the mask id unless it may be picked.
class Picker {
 public:
  Picker(const float* logits, int64_t K, int64_t V, const LevenshteinParams& p, Rng& rng)
      : logits_(logits), K_(K), V_(V), p_(p), rng_(rng) {
    if (!p.mask_in_argmax) {
      own_.assign(logits, logits + K * V);
      for (int64_t j = 0; j < K; ++j) own_[size_t(j * V + p.mask_id)] = kNegInf;
      logits_ = own_.data();
    }
  }

  // The sampled prediction (greedy at temperature 0) of every cell with `which` set.
  void sampled(const std::vector<uint8_t>& which, std::vector<int64_t>& tok, std::vector<float>& conf) {
    sample_tokens(logits_, K_, V_, p_.sampling, &rng_, tok.data(), conf.data(), which.data());
  }

  // The greedy prediction (argmax, with its softmax probability) of every cell with `which` set.
  void greedy(const std::vector<uint8_t>& which, std::vector<int64_t>& tok, std::vector<float>& conf) const {
    parallel_for(K_, [&](int64_t a, int64_t b) {
      for (int64_t j = a; j < b; ++j)
        if (which[size_t(j)]) conf[size_t(j)] = 1.0f / kernels::argmax_expsum(logits_ + j * V_, V_, &tok[size_t(j)]);
    });
  }

  // Cell j picked again without the ids of `banned`: drawn like a fill when `sampled`, else argmax.
  int64_t repick(int64_t j, const std::vector<int64_t>& banned, bool sampled) {
    row_.assign(logits_ + j * V_, logits_ + (j + 1) * V_);
    for (int64_t id : banned) row_[size_t(id)] = kNegInf;
    int64_t tok = 0;
    float conf = 0.f;
    if (sampled) {
      sample_tokens(row_.data(), 1, V_, p_.sampling, &rng_, &tok, &conf);
    } else {
      kernels::argmax_expsum(row_.data(), V_, &tok);
    }
    return tok;
  }

 private:
  const float* logits_;
  const int64_t K_, V_;
  const LevenshteinParams& p_;
  Rng& rng_;
  std::vector<float> own_, row_;
};

}  // namespace

LevenshteinStep levenshtein_step(LevenshteinBlock& blk, const float* logits, int64_t V, const LevenshteinParams& p,
                                 Rng& rng) {
  const int64_t K = int64_t(blk.cells.size()), mask = p.mask_id;
  const std::vector<int64_t> before = blk.cells;
  LevenshteinStep st;
  st.filled.assign(size_t(K), 0);
  st.edited.assign(size_t(K), 0);
  st.confidence.assign(size_t(K), 0.f);

  std::vector<uint8_t> is_mask(static_cast<size_t>(K)), editable(static_cast<size_t>(K));
  for (int64_t j = 0; j < K; ++j) {
    is_mask[size_t(j)] = before[size_t(j)] == mask;
    editable[size_t(j)] = !is_mask[size_t(j)] && !blk.prompt[size_t(j)];
  }
  Picker picker(logits, K, V, p, rng);
  std::vector<int64_t> fill_tok(before), edit_tok(before);
  std::vector<float> fill_conf(size_t(K), 0.f), edit_conf(size_t(K), 0.f);
  if (std::count(is_mask.begin(), is_mask.end(), 1)) picker.sampled(is_mask, fill_tok, fill_conf);
  if (p.editing_threshold) picker.greedy(editable, edit_tok, edit_conf);

  // Rule 3: the fill, by threshold or the schedule (which grows by the new masks), then every mask.
  std::vector<int64_t> masked;
  for (int64_t j = 0; j < K; ++j)
    if (is_mask[size_t(j)]) masked.push_back(j);
  const float thr = float(p.threshold);
  if (blk.step < p.steps) {
    const int64_t need = blk.initial / p.steps + (blk.step < blk.initial % p.steps ? 1 : 0) + blk.new_masks(mask);
    int64_t above = 0;
    for (int64_t j : masked) above += fill_conf[size_t(j)] > thr;
    if (above >= need) {
      for (int64_t j : masked) st.filled[size_t(j)] = fill_conf[size_t(j)] > thr;
    } else {
      std::vector<int64_t> order = masked;  // by confidence, ties to the lower position
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return fill_conf[size_t(a)] > fill_conf[size_t(b)]; });
      for (int64_t i = 0; i < std::min<int64_t>(need, int64_t(order.size())); ++i)
        st.filled[size_t(order[size_t(i)])] = 1;
    }
  } else {
    for (int64_t j : masked) st.filled[size_t(j)] = 1;
  }
  // Rule 5: the final round fills every mask.
  if (blk.post > 0) {
    st.final_round = blk.post >= p.max_post_steps;
  } else {
    bool fills_last = p.max_post_steps == 0;
    for (int64_t j : masked)
      if (!blk.added[size_t(j)] && !st.filled[size_t(j)]) fills_last = false;
    st.final_round = fills_last;
  }
  if (st.final_round)
    for (int64_t j : masked) st.filled[size_t(j)] = 1;

  // Rule 4: substitutions by the greedy prediction.
  if (p.editing_threshold) {
    const float edit_thr = float(*p.editing_threshold);
    for (int64_t j = 0; j < K; ++j)
      st.edited[size_t(j)] =
          editable[size_t(j)] && edit_tok[size_t(j)] != before[size_t(j)] && edit_conf[size_t(j)] > edit_thr;
  }
  st.written = before;
  bool wrote = false;
  for (size_t j = 0; j < size_t(K); ++j) {
    if (st.filled[j]) {
      st.written[j] = fill_tok[j];
      st.confidence[j] = fill_conf[j];
    } else if (st.edited[j]) {
      st.written[j] = edit_tok[j];
      st.confidence[j] = edit_conf[j];
    }
    wrote = wrote || st.filled[j] || st.edited[j];
  }
  auto is_edit_id = [&](int64_t t) { return (p.delete_id && t == *p.delete_id) || (p.split_id && t == *p.split_id); };

  if (st.final_round) {
    // Rule 5: no deletion or split in the final round.
    std::vector<int64_t> banned;
    for (const std::optional<int64_t>& id : {p.delete_id, p.split_id})
      if (id) banned.push_back(*id);
    for (int64_t j = 0; j < K; ++j)
      if ((st.filled[size_t(j)] || st.edited[size_t(j)]) && is_edit_id(st.written[size_t(j)]))
        st.written[size_t(j)] = picker.repick(j, banned, st.filled[size_t(j)]);
  } else if (wrote) {
    // Rule 6: a written block seen before in this block gets up to 5 re-picks of a random changed cell.
    std::vector<std::vector<int64_t>> bans(static_cast<size_t>(K));
    for (int tries = 0; tries < 5 && blk.seen.count(st.written); ++tries) {
      std::vector<int64_t> changed;
      for (int64_t j = 0; j < K; ++j)
        if ((st.filled[size_t(j)] || st.edited[size_t(j)]) && st.written[size_t(j)] != before[size_t(j)])
          changed.push_back(j);
      if (changed.empty()) break;
      const int64_t n = int64_t(changed.size());
      const int64_t j = changed[size_t(std::min<int64_t>(n - 1, int64_t(rng.uniform() * double(n))))];
      bans[size_t(j)].push_back(st.written[size_t(j)]);
      st.written[size_t(j)] = picker.repick(j, bans[size_t(j)], st.filled[size_t(j)]);
    }
    blk.seen.insert(st.written);
  }

  // Rule 7: deletions drop their cell, splits put a new mask before the cell's token; then the block
  // is cut or padded with new masks to its length.
  std::vector<int64_t> cells;
  std::vector<uint8_t> prompt, added;
  auto push = [&](int64_t t, uint8_t pr, uint8_t ad) {
    cells.push_back(t);
    prompt.push_back(pr);
    added.push_back(ad);
  };
  for (int64_t j = 0; j < K; ++j) {
    const int64_t w = st.written[size_t(j)];
    const bool written = st.filled[size_t(j)] || st.edited[size_t(j)];
    if (written && p.delete_id && w == *p.delete_id) continue;
    if (written && p.split_id && w == *p.split_id) {
      push(mask, 0, 1);
      push(before[size_t(j)], blk.prompt[size_t(j)], blk.added[size_t(j)]);
      continue;
    }
    push(w, blk.prompt[size_t(j)], blk.added[size_t(j)]);
  }
  cells.resize(size_t(K), mask);
  prompt.resize(size_t(K), 0);
  added.resize(size_t(K), 1);
  blk.cells = std::move(cells);
  blk.prompt = std::move(prompt);
  blk.added = std::move(added);
  ++blk.step;
  // Rule 8.
  st.changed = blk.cells != before;
  if (!st.changed && blk.masks(mask) == 0) blk.ended = true;
  return st;
}

BlockEdits block_edits(const int64_t* written, const int64_t* filled, const int64_t* edited, int64_t K,
                       std::optional<int64_t> delete_id, std::optional<int64_t> split_id) {
  // Rule 7's walk: a deleted cell takes no place, a split two.
  BlockEdits e;
  int64_t at = 0;
  for (int64_t j = 0; j < K; ++j) {
    const bool wrote = filled[j] || edited[j];
    if (wrote && delete_id && written[j] == *delete_id) {
      e.deleted.push_back(std::min(at, K));
    } else if (wrote && split_id && written[j] == *split_id) {
      if (at < K) e.inserted.push_back(at);
      at += 2;
    } else {
      ++at;
    }
  }
  return e;
}

}  // namespace llada2
