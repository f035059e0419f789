#!/usr/bin/env bash
# Re-creates the shipped models (run from the repository root; ~1 h on a 2-core CPU).
# Fashion-MNIST's training set is not in ../shared/data: put Debian's dataset-fashion-mnist
# files in ~/.cache/fkdverify/fashion-mnist/ (apt-get download dataset-fashion-mnist).
set -euo pipefail
D=${FKD_DATA_DIR:-../shared/data}
T="fkdverify train"
for ds in mnist fashion-mnist; do
  $T teacher --dataset $ds --data-dir $D --arch mlp:256,256 --method pgd --eps 0.1 --epochs 10 --seed 0 --out models/${ds}_teacher_pgd.onnx --quiet
  for m in kd ard rslad iad faithful; do
    $T student --teacher models/${ds}_teacher_pgd.onnx --method $m --dataset $ds --data-dir $D --arch mlp:64,64 --eps 0.1 --epochs 10 --seed 0 --out models/${ds}_student_$m.onnx --quiet
  done
done
# a certified teacher (CROWN-IBP): certified robust accuracy in models/README.md
$T teacher --dataset mnist --data-dir $D --arch mlp:256,256 --method crown-ibp --eps 0.1 --epochs 40 --ramp 0.4 --seed 0 --out models/mnist_teacher_crownibp.onnx --quiet
# students of the certified teacher (mlp:128,128, 20 epochs): KD, certified KD (KD + CROWN-IBP
# on the student), faithful with the sound gap term (its eps ramped over 40% of the run)
CT=models/mnist_teacher_crownibp.onnx
$T student --teacher $CT --method kd --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --out models/mnist_crownibp_student_kd.onnx --quiet
$T student --teacher $CT --method certified-kd --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --ramp 0.4 --out models/mnist_crownibp_student_certified-kd.onnx --quiet
$T student --teacher $CT --method faithful --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --bound-weight 1.0 --student-bound ibp --ramp 0.4 --out models/mnist_crownibp_student_faithful.onnx --quiet
# CIFAR-10: PGD-5 instead of PGD-10 to fit a 2-core CPU; sized for bound-based certification
$T teacher --dataset cifar10 --data-dir $D --arch cnn-small --method pgd --eps 0.0078431 --epochs 10 --pgd-steps 5 --seed 0 --out models/cifar10_teacher_pgd.onnx --quiet
for m in kd faithful; do
  $T student --teacher models/cifar10_teacher_pgd.onnx --method $m --dataset cifar10 --data-dir $D --arch cnn-tiny --eps 0.0078431 --epochs 10 --pgd-steps 5 --seed 0 --out models/cifar10_student_$m.onnx --quiet
done
# the baselines of the certified teacher: ARD, RSLAD, IAD (mlp:128,128, 20 epochs)
for m in ard rslad iad; do
  $T student --teacher $CT --method $m --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --out models/mnist_crownibp_student_$m.onnx --quiet
done
# Fashion-MNIST: a certified teacher (CROWN-IBP, as for MNIST) and its KD, certified-KD, faithful, ARD, RSLAD and IAD students
$T teacher --dataset fashion-mnist --data-dir $D --arch mlp:256,256 --method crown-ibp --eps 0.1 --epochs 40 --ramp 0.4 --seed 0 --out models/fashion-mnist_teacher_crownibp.onnx --quiet
FT=models/fashion-mnist_teacher_crownibp.onnx
$T student --teacher $FT --method kd --dataset fashion-mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --out models/fashion-mnist_crownibp_student_kd.onnx --quiet
$T student --teacher $FT --method certified-kd --dataset fashion-mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --ramp 0.4 --out models/fashion-mnist_crownibp_student_certified-kd.onnx --quiet
$T student --teacher $FT --method faithful --dataset fashion-mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --bound-weight 1.0 --student-bound ibp --ramp 0.4 --out models/fashion-mnist_crownibp_student_faithful.onnx --quiet
for m in ard rslad iad; do
  $T student --teacher $FT --method $m --dataset fashion-mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --out models/fashion-mnist_crownibp_student_$m.onnx --quiet
done
# MNIST: an MTL-IBP teacher (meets clean >= 97%, certified >= 85%) and its students
$T teacher --dataset mnist --data-dir $D --arch mlp:256,256 --method mtl-ibp --ibp-weight 0.25 --eps 0.1 --epochs 40 --ramp 0.4 --seed 0 --out models/mnist_teacher_mtlibp.onnx --quiet
MT=models/mnist_teacher_mtlibp.onnx
$T student --teacher $MT --method kd --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --out models/mnist_mtlibp_student_kd.onnx --quiet
$T student --teacher $MT --method certified-kd --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --ramp 0.4 --out models/mnist_mtlibp_student_certified-kd.onnx --quiet
$T student --teacher $MT --method faithful --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --bound-weight 1.0 --student-bound ibp --ramp 0.4 --out models/mnist_mtlibp_student_faithful.onnx --quiet
for m in ard rslad iad; do
  $T student --teacher $MT --method $m --dataset mnist --data-dir $D --arch mlp:128,128 --eps 0.1 --epochs 20 --seed 0 --out models/mnist_mtlibp_student_$m.onnx --quiet
done
# CIFAR-10: an MTL-IBP cnn-small teacher (PGD-1 + IBP, a = 0.5) and its cnn-tiny KD, certified-KD, faithful, ARD, RSLAD and IAD students
$T teacher --dataset cifar10 --data-dir $D --arch cnn-small --method mtl-ibp --ibp-weight 0.5 --eps 0.0078431 --epochs 15 --pgd-steps 1 --ramp 0.4 --seed 0 --out models/cifar10_teacher_mtlibp.onnx --quiet
CC=models/cifar10_teacher_mtlibp.onnx
$T student --teacher $CC --method kd --dataset cifar10 --data-dir $D --arch cnn-tiny --eps 0.0078431 --epochs 10 --seed 0 --out models/cifar10_mtlibp_student_kd.onnx --quiet
$T student --teacher $CC --method certified-kd --dataset cifar10 --data-dir $D --arch cnn-tiny --eps 0.0078431 --epochs 10 --pgd-steps 5 --ramp 0.4 --seed 0 --out models/cifar10_mtlibp_student_certified-kd.onnx --quiet
$T student --teacher $CC --method faithful --dataset cifar10 --data-dir $D --arch cnn-tiny --eps 0.0078431 --epochs 10 --pgd-steps 5 --bound-weight 1.0 --student-bound ibp --ramp 0.4 --seed 0 --out models/cifar10_mtlibp_student_faithful.onnx --quiet
for m in ard rslad iad; do
  $T student --teacher $CC --method $m --dataset cifar10 --data-dir $D --arch cnn-tiny --eps 0.0078431 --epochs 10 --pgd-steps 5 --seed 0 --out models/cifar10_mtlibp_student_$m.onnx --quiet
done
