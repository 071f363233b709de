"""A zoo of tiny models of the ecosystem's image-to-image architectures, for the tests of loading
third-party weights: small configurations of the architectures spandrel detects, built from
spandrel's own model classes, so that a state dict saved from one (as .pth or .safetensors) is
detected by spandrel as that architecture, at that scale, and loads back tensor for tensor.

Each configuration keeps the hyperparameters spandrel's loader can infer from key names and
tensor shapes (or the values it assumes where it cannot), so the model spandrel rebuilds is the
model saved (its forward gives the same output). The models are a few thousand to a few hundred
thousand parameters; three whose classes fix their own widths are larger (SCUNet and RealCUGAN,
about 1.3-1.5M; MMRealSR, 370k). Each runs a 64x64 input on one CPU thread in well under a
second. FBCNN has no tiny configuration (see ``LEFT_OUT``); GFPGAN, RestoreFormer, LaMa and
Uformer are not covered.

The weights are random and seeded (``build(arch, seed)``): every floating-point parameter is
perturbed after the architecture's own initialisation, so layers that initialise to zero (many
architectures zero their last convolution, or a layer scale) are not zero, and every BatchNorm's
running statistics are randomised, so no layer is the identity and the models' outputs differ
from their inputs.

spandrel is imported only when a model is built, never when this module is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["EXPECTED", "LEFT_OUT", "ZOO", "build", "state_dict_of"]


def _cls(module: str, name: str) -> Any:
    """The class ``name`` of ``spandrel.architectures.<module>``, spandrel imported through
    edgegen's helper (which stands in for a torchvision that does not import)."""
    from edgegen.train.ecosystem import import_spandrel

    import_spandrel()
    return getattr(importlib.import_module(f"spandrel.architectures.{module}"), name)


# --- the builders, one a zero-argument function; each returns the model in eval mode -----------


def _compact() -> torch.nn.Module:
    cls = _cls("Compact.__arch.SRVGG", "SRVGGNetCompact")
    return cls(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=2, upscale=2).eval()


def _swiftsrgan() -> torch.nn.Module:
    cls = _cls("SwiftSRGAN.__arch.SwiftSRGAN", "Generator")
    return cls(in_channels=3, num_channels=16, num_blocks=2, upscale_factor=2).eval()


def _hat() -> torch.nn.Module:
    cls = _cls("HAT.__arch.HAT", "HAT")
    return cls(
        img_size=64,
        in_chans=3,
        embed_dim=24,
        depths=[2],
        num_heads=[2],
        window_size=8,
        compress_ratio=3,
        squeeze_factor=6,
        overlap_ratio=0.5,
        mlp_ratio=2.0,
        upscale=2,
        upsampler="pixelshuffle",
        resi_connection="1conv",
        num_feat=16,
    ).eval()


def _grl() -> torch.nn.Module:
    # GRL's window and stripe sizes live in non-persistent buffers, so spandrel assumes the
    # official SR values (window 32, stripes 64x64, anchor down-factor 4): build with those.
    cls = _cls("GRL.__arch.grl", "GRL")
    return cls(
        img_size=64,
        in_channels=3,
        out_channels=3,
        embed_dim=16,
        upscale=2,
        upsampler="pixelshuffledirect",
        depths=[1],
        num_heads_window=[1],
        num_heads_stripe=[1],
        window_size=32,
        stripe_size=[64, 64],
        stripe_groups=[None, None],
        stripe_shift=True,
        mlp_ratio=2.0,
        qkv_bias=True,
        qkv_proj_type="linear",
        anchor_proj_type="avgpool",
        anchor_one_stage=True,
        anchor_window_down_factor=4,
        out_proj_type="linear",
        local_connection=False,
        conv_type="1conv",
        init_method="n",
    ).eval()


def _swin2sr() -> torch.nn.Module:
    # img_size is read back from the stored attention masks; 32 keeps those small (a 64x64
    # input has its masks computed on the fly).
    cls = _cls("Swin2SR.__arch.Swin2SR", "Swin2SR")
    return cls(
        img_size=32,
        patch_size=1,
        in_chans=3,
        embed_dim=24,
        depths=[2],
        num_heads=[2],
        window_size=8,
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        upsampler="pixelshuffledirect",
        resi_connection="1conv",
    ).eval()


def _swinir() -> torch.nn.Module:
    cls = _cls("SwinIR.__arch.SwinIR", "SwinIR")
    return cls(
        img_size=32,
        patch_size=1,
        in_chans=3,
        embed_dim=24,
        depths=[2],
        num_heads=[2],
        window_size=8,
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        upsampler="pixelshuffledirect",
        resi_connection="1conv",
    ).eval()


def _omnisr() -> torch.nn.Module:
    cls = _cls("OmniSR.__arch.OmniSR", "OmniSR")
    return cls(
        num_in_ch=3,
        num_out_ch=3,
        num_feat=16,
        block_num=1,
        pe=True,
        window_size=8,
        res_num=1,
        up_scale=2,
        bias=True,
    ).eval()


def _scunet() -> torch.nn.Module:
    # SCUNet fixes its attention head width at 32 (so dim >= 64); one block per outer stage.
    cls = _cls("SCUNet.__arch.SCUNet", "SCUNet")
    return cls(in_nc=3, config=[1, 0, 0, 0, 0, 0, 1], dim=64, input_resolution=256).eval()


def _rgt() -> torch.nn.Module:
    # 32 dims, not fewer: the dynamic position bias gets embed_dim // 32 features (0 below 32).
    cls = _cls("RGT.__arch.rgt", "RGT")
    return cls(
        img_size=64,
        in_chans=3,
        embed_dim=32,
        depth=[2],
        num_heads=[2],
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        resi_connection="1conv",
        split_size=[8, 8],
        c_ratio=0.5,
    ).eval()


def _dat() -> torch.nn.Module:
    # 32 dims, not fewer: the dynamic position bias gets embed_dim // 32 features (0 below 32).
    cls = _cls("DAT.__arch.DAT", "DAT")
    return cls(
        img_size=64,
        in_chans=3,
        embed_dim=32,
        split_size=[4, 8],
        depth=[2],
        num_heads=[2],
        expansion_factor=2.0,
        upscale=2,
        img_range=1.0,
        resi_connection="1conv",
        upsampler="pixelshuffledirect",
    ).eval()


def _craft() -> torch.nn.Module:
    # window_size cannot be read from a state dict: spandrel's 16. 32 dims, not fewer: the
    # dynamic position bias gets embed_dim // 32 features (0 below 32).
    cls = _cls("CRAFT.__arch.CRAFT", "CRAFT")
    return cls(
        in_chans=3,
        window_size=16,
        embed_dim=32,
        depths=[2],
        num_heads=[2],
        split_size_0=4,
        split_size_1=16,
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        resi_connection="1conv",
    ).eval()


def _kbnet() -> torch.nn.Module:
    cls = _cls("KBNet.__arch.kbnet_s", "KBNet_s")
    return cls(
        img_channel=3,
        width=8,
        middle_blk_num=1,
        enc_blk_nums=[1, 1],
        dec_blk_nums=[1, 1],
        lightweight=False,
        ffn_scale=2,
    ).eval()


def _ditn() -> torch.nn.Module:
    cls = _cls("DITN.__arch.DITN_Real", "DITN_Real")
    return cls(
        inp_channels=3,
        dim=24,
        ITL_blocks=1,
        SAL_blocks=1,
        UFONE_blocks=1,
        ffn_expansion_factor=2,
        bias=False,
        patch_size=8,
        upscale=2,
    ).eval()


def _mmrealsr() -> torch.nn.Module:
    # Scale 4 only: at 2x and 1x the class's degradation net expects the pixel-unshuffled input
    # but is fed the image itself. Its 512-wide degradation embeddings are fixed by the class.
    cls = _cls("MMRealSR.__arch.mmrealsr_arch", "MMRRDBNet_test")
    return cls(
        num_in_ch=3,
        num_out_ch=3,
        scale=4,
        num_feat=16,
        num_block=1,
        num_grow_ch=8,
        num_degradation=2,
        num_feats=[16, 32],
        num_blocks=[1, 1],
        downscales=[2, 1],
    ).eval()


def _span() -> torch.nn.Module:
    # img_range and rgb_mean cannot be read from a state dict: spandrel's defaults.
    cls = _cls("SPAN.__arch.span", "SPAN")
    return cls(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2).eval()


def _realcugan() -> torch.nn.Module:
    # RealCUGAN's widths are fixed by its class; only the channels and scale vary.
    cls = _cls("RealCUGAN.__arch.upcunet_v3", "UpCunet2x")
    return cls(in_channels=3, out_channels=3, pro=False).eval()


def _safmn() -> torch.nn.Module:
    cls = _cls("SAFMN.__arch.safmn", "SAFMN")
    return cls(dim=16, n_blocks=1, ffn_scale=2.0, upscaling_factor=2).eval()


def _safmnbcie() -> torch.nn.Module:
    cls = _cls("SAFMNBCIE.__arch.safmn_bcie", "SAFMN_BCIE")
    return cls(dim=16, n_blocks=1, num_layers=1, ffn_scale=2.0, upscaling_factor=2).eval()


def _dctlsa() -> torch.nn.Module:
    # six modules and five heads are fixed by the class (its forward names B1..B6).
    cls = _cls("DCTLSA.__arch.dctlsa", "DCTLSA")
    return cls(in_nc=3, nf=10, num_modules=6, out_nc=3, upscale=2, num_head=5).eval()


def _fftformer() -> torch.nn.Module:
    cls = _cls("FFTformer.__arch.fftformer_arch", "FFTformer")
    return cls(
        inp_channels=3,
        out_channels=3,
        dim=8,
        num_blocks=[1, 1, 1],
        num_refinement_blocks=1,
        ffn_expansion_factor=3,
        bias=False,
    ).eval()


def _nafnet() -> torch.nn.Module:
    cls = _cls("NAFNet.__arch.NAFNet_arch", "NAFNet")
    return cls(
        img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]
    ).eval()


def _atd() -> torch.nn.Module:
    # category_size cannot be read from a state dict: spandrel assumes 256 unless the model is
    # the official "light" one (48 dims, pixelshuffledirect).
    cls = _cls("ATD.__arch.atd_arch", "ATD")
    return cls(
        img_size=64,
        in_chans=3,
        embed_dim=24,
        depths=[2],
        num_heads=[2],
        window_size=8,
        category_size=256,
        num_tokens=16,
        reducted_dim=4,
        convffn_kernel_size=5,
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        upsampler="pixelshuffledirect",
        resi_connection="1conv",
    ).eval()


def _mixdehazenet() -> torch.nn.Module:
    cls = _cls("MixDehazeNet.__arch.MixDehazeNet", "MixDehazeNet")
    return cls(
        in_chans=3, out_chans=4, embed_dims=[8, 16, 24, 16, 8], depths=[1, 1, 1, 1, 1]
    ).eval()


def _drunet() -> torch.nn.Module:
    # DRUNet takes the image and a noise-level map: one input channel more than the image.
    cls = _cls("DRUNet.__arch.network_unet", "DRUNet")
    return cls(
        in_nc=4,
        out_nc=3,
        nc=[8, 16, 24, 32],
        nb=2,
        act_mode="R",
        downsample_mode="strideconv",
        upsample_mode="convtranspose",
    ).eval()


def _dncnn() -> torch.nn.Module:
    # act_mode "BR": batch-normalised, so the BatchNorm statistics are exercised too.
    cls = _cls("DnCNN.__arch.network_dncnn", "DnCNN")
    return cls(in_nc=3, out_nc=3, nc=16, nb=4, act_mode="BR", mode="DnCNN").eval()


def _ipt() -> torch.nn.Module:
    # spandrel fixes 12 heads and three colours; 12 features in 2x2 patches: 48-dim tokens.
    cls = _cls("IPT.__arch.ipt", "IPT")
    return cls(
        patch_size=16,
        patch_dim=2,
        n_feats=12,
        rgb_range=255,
        n_colors=3,
        scale=[2],
        num_heads=12,
        num_layers=1,
        num_queries=1,
        mlp=True,
        pos_every=False,
        no_pos=False,
        no_norm=False,
    ).eval()


def _drct() -> torch.nn.Module:
    # DRCT's depths do not shape its state dict; spandrel assumes 6 per layer.
    cls = _cls("DRCT.__arch.drct_arch", "DRCT")
    return cls(
        img_size=32,
        patch_size=1,
        in_chans=3,
        embed_dim=24,
        depths=(6,),
        num_heads=(2,),
        window_size=8,
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        upsampler="pixelshuffle",
        resi_connection="1conv",
        gc=8,
    ).eval()


def _esrgan() -> torch.nn.Module:
    cls = _cls("ESRGAN.__arch.RRDB", "RRDBNet")
    return cls(in_nc=3, out_nc=3, num_filters=16, num_blocks=1, scale=2).eval()


def _plksr() -> torch.nn.Module:
    cls = _cls("PLKSR.__arch.PLKSR", "PLKSR")
    return cls(
        dim=16,
        n_blocks=2,
        upscaling_factor=2,
        ccm_type="CCM",
        kernel_size=17,
        split_ratio=0.25,
        lk_type="PLK",
        use_ea=True,
    ).eval()


def _retinexformer() -> torch.nn.Module:
    cls = _cls("RetinexFormer.__arch.retinexformer_arch", "RetinexFormer")
    return cls(in_channels=3, out_channels=3, n_feat=8, stage=1, num_blocks=[1, 1, 1]).eval()


def _hvicidnet() -> torch.nn.Module:
    cls = _cls("HVICIDNet.__arch.cidnet", "CIDNet")
    return cls(channels=[8, 8, 16, 32], heads=[1, 1, 2, 4], norm=False).eval()


def _seemore() -> torch.nn.Module:
    # use_shuffle, recursive and topk cannot be read from a state dict: spandrel's defaults.
    cls = _cls("SeemoRe.__arch.seemore_arch", "SeemoRe")
    return cls(
        scale=2,
        in_chans=3,
        num_experts=3,
        num_layers=1,
        embedding_dim=16,
        img_range=1.0,
        use_shuffle=True,
        global_kernel_size=11,
        recursive=2,
        lr_space="linear",
        topk=1,
    ).eval()


def _mosr() -> torch.nn.Module:
    cls = _cls("MoSR.__arch.mosr_arch", "MoSR")
    return cls(
        in_ch=3,
        out_ch=3,
        upscale=2,
        n_block=1,
        dim=16,
        upsampler="ps",
        kernel_size=7,
        expansion_ratio=1.5,
        conv_ratio=1.0,
    ).eval()


def _moesr() -> torch.nn.Module:
    cls = _cls("MoESR.__arch.MoESR", "MoESR")
    return cls(
        in_ch=3,
        out_ch=3,
        scale=2,
        dim=16,
        n_blocks=1,
        n_block=1,
        expansion_factor=2.0,
        expansion_msg=1.5,
        upsampler="pixelshuffledirect",
        upsample_dim=16,
    ).eval()


def _rcan() -> torch.nn.Module:
    # rgb_range, res_scale and the activation cannot be read from a state dict: spandrel's
    # defaults. (RCAN's forward scales its input in place when it needs no padding.)
    cls = _cls("RCAN.__arch.rcan_arch", "RCAN")
    return cls(
        scale=2,
        n_resgroups=1,
        n_resblocks=1,
        n_feats=16,
        n_colors=3,
        rgb_range=255,
        norm=True,
        kernel_size=3,
        reduction=4,
        res_scale=1,
        act_mode="relu",
        unshuffle_mod=False,
    ).eval()


def _fdat() -> torch.nn.Module:
    cls = _cls("FDAT.__arch.fdat", "FDAT")
    return cls(
        num_in_ch=3,
        num_out_ch=3,
        scale=2,
        embed_dim=24,
        num_groups=1,
        depth_per_group=1,
        num_heads=2,
        window_size=8,
        ffn_expansion_ratio=2.0,
        aim_reduction_ratio=8,
        group_block_pattern=None,
        mid_dim=16,
        upsampler_type="pixelshuffle",
        img_range=1.0,
        unshuffle_mod=False,
    ).eval()


def _aurasr() -> torch.nn.Module:
    # AuraSR upsamples 4x by construction (five up stages, three down); spandrel reads the scale
    # from the style network's widths, so those are 4:1 too. Its forward draws random noise:
    # outputs repeat only under the same torch seed.
    cls = _cls("AuraSR.__arch.aura_sr", "UnetUpsampler")
    return cls(
        dim=8,
        image_size=None,
        input_image_size=None,
        style_network={"dim_in": 8, "dim_out": 32, "depth": 1},
        up_dim_mults=(1, 1, 1, 1, 1),
        down_dim_mults=(1, 1, 1),
        channels=3,
        full_attn=(False, False, False, False, True),
        flash_attn=True,
        self_attn_dim_head=8,
        self_attn_heads=8,
        attn_depths=(1, 1, 1, 1, 1),
        mid_attn_depth=1,
        num_conv_kernels=2,
        skip_connect_scale=0.4,
    ).eval()


ZOO: dict[str, Callable[[], torch.nn.Module]] = {
    "Compact": _compact,
    "SwiftSRGAN": _swiftsrgan,
    "HAT": _hat,
    "GRL": _grl,
    "Swin2SR": _swin2sr,
    "SwinIR": _swinir,
    "OmniSR": _omnisr,
    "SCUNet": _scunet,
    "RGT": _rgt,
    "DAT": _dat,
    "CRAFT": _craft,
    "KBNet": _kbnet,
    "DITN": _ditn,
    "MMRealSR": _mmrealsr,
    "SPAN": _span,
    "RealCUGAN": _realcugan,
    "SAFMN": _safmn,
    "SAFMNBCIE": _safmnbcie,
    "DCTLSA": _dctlsa,
    "FFTformer": _fftformer,
    "NAFNet": _nafnet,
    "ATD": _atd,
    "MixDehazeNet": _mixdehazenet,
    "DRUNet": _drunet,
    "DnCNN": _dncnn,
    "IPT": _ipt,
    "DRCT": _drct,
    "ESRGAN": _esrgan,
    "PLKSR": _plksr,
    "RetinexFormer": _retinexformer,
    "HVICIDNet": _hvicidnet,
    "SeemoRe": _seemore,
    "MoSR": _mosr,
    "MoESR": _moesr,
    "RCAN": _rcan,
    "FDAT": _fdat,
    "AuraSR": _aurasr,
}
"""spandrel architecture id -> a zero-argument builder of a tiny model of it, in eval mode."""


LEFT_OUT: dict[str, str] = {
    "FBCNN": (
        "no tiny FBCNN exists: its quality-factor head fixes 512 bottleneck features, and "
        "spandrel's detection needs two blocks a stage (one collapses out of its Sequential), "
        "about 28M parameters at the least"
    ),
}
"""Architectures of the ecosystem the zoo has no model of, and why."""


def _sr(scale: int, channels: int = 3) -> dict[str, int]:
    return {"scale": scale, "in": channels, "out": channels}


EXPECTED: dict[str, dict[str, int]] = {
    "Compact": _sr(2),
    "SwiftSRGAN": _sr(2),
    "HAT": _sr(2),
    "GRL": _sr(2),
    "Swin2SR": _sr(2),
    "SwinIR": _sr(2),
    "OmniSR": _sr(2),
    "SCUNet": _sr(1),
    "RGT": _sr(2),
    "DAT": _sr(2),
    "CRAFT": _sr(2),
    "KBNet": _sr(1),
    "DITN": _sr(2),
    "MMRealSR": _sr(4),
    "SPAN": _sr(2),
    "RealCUGAN": _sr(2),
    "SAFMN": _sr(2),
    "SAFMNBCIE": _sr(1),  # upscales internally, but restores at the input's size
    "DCTLSA": _sr(2),
    "FFTformer": _sr(1),
    "NAFNet": _sr(1),
    "ATD": _sr(2),
    "MixDehazeNet": _sr(1),
    "DRUNet": _sr(1),  # the model's fourth input channel is the noise map spandrel adds
    "DnCNN": _sr(1),
    "IPT": _sr(2),
    "DRCT": _sr(2),
    "ESRGAN": _sr(2),
    "PLKSR": _sr(2),
    "RetinexFormer": _sr(1),
    "HVICIDNet": _sr(1),
    "SeemoRe": _sr(2),
    "MoSR": _sr(2),
    "MoESR": _sr(2),
    "RCAN": _sr(2),
    "FDAT": _sr(2),
    "AuraSR": _sr(4),
}
"""What spandrel reports for each model of the zoo: scale, input and output channels."""


def build(arch: str, seed: int = 0) -> torch.nn.Module:
    """The zoo's model of ``arch`` with seeded random weights, in eval mode: every floating-point
    parameter perturbed (so layers initialised to zero are not), every BatchNorm's running
    statistics randomised (so none is the identity)."""
    if arch not in ZOO:
        raise KeyError(f"no model of {arch!r} in the zoo; it has {', '.join(ZOO)}")
    torch.manual_seed(seed)
    model = ZOO[arch]()
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.add_(0.02 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                if m.running_var is not None:
                    m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
    return model.eval()


def state_dict_of(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of ``build(arch, seed)``, every tensor a contiguous copy of its own."""
    return {k: v.detach().clone().contiguous() for k, v in build(arch, seed).state_dict().items()}
