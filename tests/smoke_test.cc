#include <gtest/gtest.h>

#include "llada2/types.h"

TEST(Types, DtypeSizes) {
  EXPECT_EQ(llada2::dtype_size(llada2::DType::BF16), 2u);
  EXPECT_EQ(llada2::dtype_size(llada2::DType::F32), 4u);
}
