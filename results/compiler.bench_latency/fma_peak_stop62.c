#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  __m512 a[24]; __m512 b=_mm512_set1_ps(1.0000001f), c=_mm512_set1_ps(1e-7f);
  for(int i=0;i<24;i++) a[i]=_mm512_set1_ps((float)i);
  long n=200000000/24;
  for(int rep=0;rep<3;rep++){
  double t=now();
  for(long k=0;k<n;k++){
#pragma GCC unroll 24
    for(int i=0;i<24;i++) a[i]=_mm512_fmadd_ps(a[i],b,c);
  }
  double dt=now()-t; float s=0; for(int i=0;i<24;i++) s+=_mm512_reduce_add_ps(a[i]);
  printf("zmm: %.1f GFLOP/s (%g)\n", (double)n*24*16*2/dt/1e9, s);
  }
  __m256 y[12]; __m256 yb=_mm256_set1_ps(1.0000001f), yc=_mm256_set1_ps(1e-7f);
  for(int i=0;i<12;i++) y[i]=_mm256_set1_ps((float)i);
  double t=now();
  for(long k=0;k<n*2;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) y[i]=_mm256_fmadd_ps(y[i],yb,yc);
  }
  double dt=now()-t; float s=0; float tmp[8]; for(int i=0;i<12;i++){_mm256_storeu_ps(tmp,y[i]); s+=tmp[0];}
  printf("ymm: %.1f GFLOP/s (%g)\n", (double)n*2*12*8*2/dt/1e9, s);
}
